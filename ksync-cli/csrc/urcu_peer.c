/*
 * The liburcu peer of `ksync bench` (group `rcu`): the memb flavour of
 * userspace-rcu (liburcu, https://liburcu.org/, by Mathieu Desnoyers et al.),
 * driven from C so that its inline read side is measured as a C user gets it.
 *
 * With _LGPL_SOURCE defined, <urcu/urcu-memb.h> maps urcu_memb_read_lock()
 * and urcu_memb_read_unlock() to the static inline fast paths of
 * <urcu/static/urcu-memb.h> (a thread-local load, a store and a compiler
 * barrier each when the kernel has membarrier). A Rust caller cannot inline
 * them, and one FFI call (a few ns) would swamp the ~1 ns it measures, so
 * the loops run here and Rust divides by the iteration count.
 *
 * This file is ksync's (MIT OR Apache-2.0); it only calls liburcu's API.
 * build.rs compiles it when pkg-config finds liburcu-memb.
 */
#define _LGPL_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <urcu/urcu-memb.h>

/* Registers the calling thread as an RCU reader (urcu's readers must be). */
void ksync_urcu_register_thread(void)
{
	urcu_memb_register_thread();
}

void ksync_urcu_unregister_thread(void)
{
	urcu_memb_unregister_thread();
}

/*
 * `n` empty read-side critical sections on the calling (registered) thread,
 * with the inline fast paths. Each lock and unlock stores to the reader's
 * thread-local counter through CMM_STORE_SHARED (a volatile store), so the
 * compiler keeps every iteration.
 */
void ksync_urcu_read_loop(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		urcu_memb_read_lock();
		urcu_memb_read_unlock();
	}
}

/* One grace period: returns once every registered reader has left the
 * critical section it was in. */
void ksync_urcu_synchronize_rcu(void)
{
	urcu_memb_synchronize_rcu();
}

/* Callbacks run so far, by liburcu's call_rcu worker thread. */
static uint64_t callbacks_run;

/* The callback: counts itself (as the ksync row's closure does). */
static void count_one(struct rcu_head *head)
{
	(void)head;
	/* Relaxed: urcu_memb_barrier() below returns only after this callback
	 * has run, and its own synchronisation orders the count before the
	 * caller's read. */
	__atomic_fetch_add(&callbacks_run, 1, __ATOMIC_RELAXED);
}

/*
 * Queues `n` callbacks with call_rcu, then waits for all of them with
 * rcu_barrier (urcu_memb_barrier). Returns how many callbacks ran meanwhile:
 * `n` when liburcu kept its promise, or UINT64_MAX if the heads could not be
 * allocated. The calling thread must be registered.
 *
 * The rcu_heads come from one allocation per batch, not one per call: the
 * ksync row's callback is a capture-less closure, which allocates nothing, so
 * both rows measure queueing and running a callback, not malloc.
 */
uint64_t ksync_urcu_call_rcu_batch(uint64_t n)
{
	struct rcu_head *heads = calloc(n ? n : 1, sizeof(*heads));
	uint64_t before = __atomic_load_n(&callbacks_run, __ATOMIC_RELAXED);

	if (!heads)
		return UINT64_MAX;
	for (uint64_t i = 0; i < n; i++)
		urcu_memb_call_rcu(&heads[i], count_one);
	urcu_memb_barrier();
	free(heads);
	return __atomic_load_n(&callbacks_run, __ATOMIC_RELAXED) - before;
}
