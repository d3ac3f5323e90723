/*
 * The Concurrency Kit peer of `ksync bench` (group `spinlock`): CK's fas
 * (test-and-set by exchange), ticket and MCS spinlocks (Concurrency Kit,
 * https://github.com/concurrencykit/ck, by Samy Al Bahra et al.), driven
 * from C.
 *
 * CK's spinlocks are static inline functions in <ck_spinlock.h>; a Rust
 * caller cannot inline them, and one FFI call would cost as much as an
 * uncontended lock+unlock, so the loops run here and Rust divides by the
 * iteration count. Each iteration takes the lock, increments the subject's
 * counter and releases it: the same critical section as the Rust rows.
 *
 * This file is ksync's (MIT OR Apache-2.0); it only calls CK's API.
 * build.rs compiles it when pkg-config finds ck.
 */
#include <stdint.h>
#include <stdlib.h>
#include <ck_spinlock.h>

/* One subject: a lock and the counter it protects, on cache lines of its
 * own (128 bytes: the adjacent-line prefetcher pairs 64-byte lines). */
struct ksync_ck_subject {
	union {
		ck_spinlock_fas_t fas;
		ck_spinlock_ticket_t ticket;
		ck_spinlock_mcs_t mcs;
	} lock;
	uint64_t count;
} __attribute__((aligned(128)));

/* A fresh subject with every lock of the union initialised unlocked (the
 * zeroed union is each one's unlocked state; the init calls say so), or
 * NULL when out of memory. Free with ksync_ck_free. */
struct ksync_ck_subject *ksync_ck_new(void)
{
	struct ksync_ck_subject *s =
		aligned_alloc(128, sizeof(struct ksync_ck_subject));

	if (!s)
		return NULL;
	s->count = 0;
	ck_spinlock_fas_init(&s->lock.fas);
	ck_spinlock_ticket_init(&s->lock.ticket);
	ck_spinlock_mcs_init(&s->lock.mcs);
	return s;
}

void ksync_ck_free(struct ksync_ck_subject *s)
{
	free(s);
}

/* The counter; read it only once no thread runs a loop on `s`. */
uint64_t ksync_ck_count(const struct ksync_ck_subject *s)
{
	return s->count;
}

/* `n` times: lock, increment, unlock. The lock and unlock calls carry CK's
 * lock fences (compiler barriers at least), so the increment stays inside. */
void ksync_ck_fas_loop(struct ksync_ck_subject *s, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		ck_spinlock_fas_lock(&s->lock.fas);
		s->count++;
		ck_spinlock_fas_unlock(&s->lock.fas);
	}
}

void ksync_ck_ticket_loop(struct ksync_ck_subject *s, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		ck_spinlock_ticket_lock(&s->lock.ticket);
		s->count++;
		ck_spinlock_ticket_unlock(&s->lock.ticket);
	}
}

/* MCS: each acquisition queues a node of the caller's; it lives on this
 * stack frame, which outlasts every lock..unlock pair that uses it. */
void ksync_ck_mcs_loop(struct ksync_ck_subject *s, uint64_t n)
{
	ck_spinlock_mcs_context_t node;

	for (uint64_t i = 0; i < n; i++) {
		ck_spinlock_mcs_lock(&s->lock.mcs, &node);
		s->count++;
		ck_spinlock_mcs_unlock(&s->lock.mcs, &node);
	}
}
