//! Unit tests of `Atomic` and `Atomic64`: every operation's effect and return
//! value, run over both widths by one macro.

macro_rules! atomic_tests {
    ($m:ident, $T:ty, $I:ty) => {
        mod $m {
            type A = $T;
            const MAX: $I = <$I>::MAX;
            const MIN: $I = <$I>::MIN;

            #[test]
            fn read_set_and_statics() {
                static S: A = <A>::new(5);
                assert_eq!(S.read(), 5);
                let a = A::new(1);
                a.set(-3);
                assert_eq!(a.read(), -3);
                a.set_release(4);
                assert_eq!(a.read_acquire(), 4);
                assert_eq!(A::default().read(), 0);
                assert_eq!(A::from(9).into_inner(), 9);
                assert!(format!("{:?}", A::new(2)).ends_with("(2)"));
            }

            #[test]
            fn void_ops() {
                let a = A::new(10);
                a.add(5);
                assert_eq!(a.read(), 15);
                a.sub(20);
                assert_eq!(a.read(), -5);
                a.inc();
                a.inc();
                assert_eq!(a.read(), -3);
                a.dec();
                assert_eq!(a.read(), -4);
                a.set(0b1100);
                a.and(0b1010);
                assert_eq!(a.read(), 0b1000);
                a.or(0b0011);
                assert_eq!(a.read(), 0b1011);
                a.xor(0b0110);
                assert_eq!(a.read(), 0b1101);
                a.andnot(0b0101);
                assert_eq!(a.read(), 0b1000);
            }

            #[test]
            fn arithmetic_wraps_like_the_kernel() {
                let a = A::new(MAX);
                a.inc();
                assert_eq!(a.read(), MIN);
                assert_eq!(a.dec_return(), MAX);
                assert_eq!(a.add_return(2), MIN + 1);
            }

            #[test]
            fn value_returning_ops_in_every_ordering() {
                let a = A::new(0);
                // (op, expected return, expected value after), from value 0 → ...
                assert_eq!(a.add_return(3), 3);
                assert_eq!(a.add_return_relaxed(1), 4);
                assert_eq!(a.add_return_acquire(1), 5);
                assert_eq!(a.add_return_release(1), 6);
                assert_eq!(a.sub_return(2), 4);
                assert_eq!(a.sub_return_relaxed(1), 3);
                assert_eq!(a.sub_return_acquire(1), 2);
                assert_eq!(a.sub_return_release(1), 1);
                assert_eq!(a.inc_return(), 2);
                assert_eq!(a.inc_return_relaxed(), 3);
                assert_eq!(a.inc_return_acquire(), 4);
                assert_eq!(a.inc_return_release(), 5);
                assert_eq!(a.dec_return(), 4);
                assert_eq!(a.dec_return_relaxed(), 3);
                assert_eq!(a.dec_return_acquire(), 2);
                assert_eq!(a.dec_return_release(), 1);
                assert_eq!(a.read(), 1);

                assert_eq!(a.fetch_add(2), 1);
                assert_eq!(a.fetch_add_relaxed(2), 3);
                assert_eq!(a.fetch_add_acquire(2), 5);
                assert_eq!(a.fetch_add_release(2), 7);
                assert_eq!(a.fetch_sub(1), 9);
                assert_eq!(a.fetch_sub_relaxed(1), 8);
                assert_eq!(a.fetch_sub_acquire(1), 7);
                assert_eq!(a.fetch_sub_release(1), 6);
                assert_eq!(a.fetch_inc(), 5);
                assert_eq!(a.fetch_inc_relaxed(), 6);
                assert_eq!(a.fetch_inc_acquire(), 7);
                assert_eq!(a.fetch_inc_release(), 8);
                assert_eq!(a.fetch_dec(), 9);
                assert_eq!(a.fetch_dec_relaxed(), 8);
                assert_eq!(a.fetch_dec_acquire(), 7);
                assert_eq!(a.fetch_dec_release(), 6);
                assert_eq!(a.read(), 5);
            }

            #[test]
            fn fetch_bitwise_ops_return_the_old_value() {
                let a = A::new(0b1111);
                assert_eq!(a.fetch_and(0b0111), 0b1111);
                assert_eq!(a.fetch_and_relaxed(0b0011), 0b0111);
                assert_eq!(a.fetch_and_acquire(0b0001), 0b0011);
                assert_eq!(a.fetch_and_release(0b0001), 0b0001);
                assert_eq!(a.fetch_or(0b0010), 0b0001);
                assert_eq!(a.fetch_or_relaxed(0b0100), 0b0011);
                assert_eq!(a.fetch_or_acquire(0b1000), 0b0111);
                assert_eq!(a.fetch_or_release(0), 0b1111);
                assert_eq!(a.fetch_xor(0b0001), 0b1111);
                assert_eq!(a.fetch_xor_relaxed(0b0001), 0b1110);
                assert_eq!(a.fetch_xor_acquire(0b0011), 0b1111);
                assert_eq!(a.fetch_xor_release(0b1100), 0b1100);
                assert_eq!(a.read(), 0);
                a.set(0b1111);
                assert_eq!(a.fetch_andnot(0b0001), 0b1111);
                assert_eq!(a.fetch_andnot_relaxed(0b0010), 0b1110);
                assert_eq!(a.fetch_andnot_acquire(0b0100), 0b1100);
                assert_eq!(a.fetch_andnot_release(0b1000), 0b1000);
                assert_eq!(a.read(), 0);
            }

            #[test]
            fn xchg_and_cmpxchg() {
                let a = A::new(1);
                assert_eq!(a.xchg(2), 1);
                assert_eq!(a.xchg_relaxed(3), 2);
                assert_eq!(a.xchg_acquire(4), 3);
                assert_eq!(a.xchg_release(5), 4);
                // cmpxchg returns what it found; stores only on a match.
                assert_eq!(a.cmpxchg(5, 6), 5);
                assert_eq!(a.read(), 6);
                assert_eq!(a.cmpxchg(5, 7), 6);
                assert_eq!(a.read(), 6);
                assert_eq!(a.cmpxchg_relaxed(6, 7), 6);
                assert_eq!(a.cmpxchg_acquire(7, 8), 7);
                assert_eq!(a.cmpxchg_release(8, 9), 8);
                assert_eq!(a.cmpxchg_release(8, 10), 9);
                assert_eq!(a.read(), 9);
                // try_cmpxchg updates `old` on failure.
                let mut old = 1;
                assert!(!a.try_cmpxchg(&mut old, 20));
                assert_eq!(old, 9);
                assert!(a.try_cmpxchg(&mut old, 20));
                assert_eq!(old, 9);
                assert_eq!(a.read(), 20);
                let mut old = 20;
                assert!(a.try_cmpxchg_relaxed(&mut old, 21));
                let mut old = 21;
                assert!(a.try_cmpxchg_acquire(&mut old, 22));
                let mut old = 0;
                assert!(!a.try_cmpxchg_release(&mut old, 23));
                assert_eq!(old, 22);
                assert!(a.try_cmpxchg_release(&mut old, 23));
                assert_eq!(a.read(), 23);
            }

            #[test]
            fn and_test_ops() {
                let a = A::new(3);
                assert!(!a.sub_and_test(1));
                assert_eq!(a.read(), 2);
                assert!(a.sub_and_test(2));
                assert_eq!(a.read(), 0);
                assert!(!a.sub_and_test(-1)); // 1
                assert!(!a.inc_and_test()); // 2
                a.set(-1);
                assert!(a.inc_and_test());
                assert_eq!(a.read(), 0);
                assert!(!a.dec_and_test()); // -1
                a.set(1);
                assert!(a.dec_and_test());
                assert_eq!(a.read(), 0);
            }

            #[test]
            fn add_negative() {
                let a = A::new(1);
                assert!(!a.add_negative(-1)); // 0 is not negative
                assert_eq!(a.read(), 0);
                assert!(a.add_negative(-1)); // -1
                assert!(!a.add_negative(5)); // 4
                assert!(a.add_negative_relaxed(-10)); // -6
                assert_eq!(a.read(), -6);
                a.set(MAX);
                assert!(a.add_negative(1)); // wraps to MIN
            }

            #[test]
            fn conditional_ops() {
                let a = A::new(5);
                assert!(!a.add_unless(1, 5));
                assert_eq!(a.read(), 5);
                assert!(a.add_unless(2, 4));
                assert_eq!(a.read(), 7);
                assert_eq!(a.fetch_add_unless(1, 7), 7);
                assert_eq!(a.read(), 7);
                assert_eq!(a.fetch_add_unless(1, 0), 7);
                assert_eq!(a.read(), 8);

                a.set(0);
                assert!(!a.inc_not_zero());
                assert_eq!(a.read(), 0);
                a.set(1);
                assert!(a.inc_not_zero());
                assert_eq!(a.read(), 2);

                a.set(-1);
                assert!(!a.inc_unless_negative());
                assert_eq!(a.read(), -1);
                a.set(0);
                assert!(a.inc_unless_negative());
                assert_eq!(a.read(), 1);
                assert!(!a.dec_unless_positive());
                assert_eq!(a.read(), 1);
                a.set(0);
                assert!(a.dec_unless_positive());
                assert_eq!(a.read(), -1);

                // dec_if_positive returns old - 1 and decrements only if that is >= 0.
                a.set(1);
                assert_eq!(a.dec_if_positive(), 0);
                assert_eq!(a.read(), 0);
                assert_eq!(a.dec_if_positive(), -1);
                assert_eq!(a.read(), 0);
                a.set(-5);
                assert_eq!(a.dec_if_positive(), -6);
                assert_eq!(a.read(), -5);
            }

            #[test]
            fn concurrent_increments_are_not_lost() {
                let a = A::new(0);
                std::thread::scope(|s| {
                    for t in 0..8 {
                        let a = &a;
                        s.spawn(move || {
                            for i in 0..2_000 {
                                match (t + i) % 4 {
                                    0 => a.inc(),
                                    1 => {
                                        a.add_return(1);
                                    }
                                    2 => {
                                        a.fetch_add_relaxed(1);
                                    }
                                    _ => while !a.add_unless(1, MIN) {},
                                }
                            }
                        });
                    }
                });
                assert_eq!(a.read(), 16_000);
            }
        }
    };
}

atomic_tests!(atomic32, super::super::Atomic, i32);
atomic_tests!(atomic64, super::super::Atomic64, i64);

#[test]
fn atomic_long_is_atomic64() {
    let l: super::AtomicLong = super::Atomic64::new(1);
    assert_eq!(l.add_return(i64::from(i32::MAX)), 1 + i64::from(i32::MAX));
}

#[test]
fn debug_names_each_width() {
    // The template writes the name with `stringify!`; each width must still
    // print its own.
    assert_eq!(format!("{:?}", super::Atomic::new(2)), "Atomic(2)");
    assert_eq!(format!("{:?}", super::Atomic64::new(-3)), "Atomic64(-3)");
}
