/* A small persistent thread pool for data-parallel loops (Parallel.forEach in Swift).
 *
 * One job at a time: the caller publishes (fn, ctx, count), wakes the workers, and takes part
 * itself; participants claim indices from the two ends of one atomic range (dynamic scheduling,
 * so a core busy with another process just claims fewer; see drain for why two ends). Workers that have not arrived by the time
 * the caller has finished its share are shut out of the job, so a late wake-up never delays the
 * caller. After a job, workers spin briefly (cheap wake-up for the next layer's job), then sleep
 * on a condition variable.
 *
 * A call from inside a job (nested parallelism), or while another thread's job is running,
 * runs serially on the calling thread: no deadlock, no oversubscription. */
#define _GNU_SOURCE
#include "inception_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define IK_PAUSE() __asm__ __volatile__("yield")
#else
#define IK_PAUSE() ((void)0)
#endif

#define IK_MAX_THREADS 256
/* How long an idle worker polls for the next job before sleeping. */
#define IK_SPIN_NS 200000L

typedef struct {
    pthread_mutex_t submit;   /* held by the thread whose job is running */
    pthread_mutex_t lock;     /* guards sleeping and waking */
    pthread_cond_t wake;
    int workers;              /* worker threads started (grow only) */

    /* The current job; written by the caller before `generation` is bumped. */
    void (*fn)(void *, ptrdiff_t);
    void *ctx;
    ptrdiff_t count;
    /* atomic: the unclaimed indices front ..< back, as front | back << 32. The caller claims from
     * the front, the first worker to join from the back (see drain). */
    uint64_t range;
    /* atomic: (generation << 16) | joined workers, with IK_CLOSED set once the caller stops
     * admitting workers. A worker joins with a CAS that fails if the job changed or closed. */
    uint64_t admission;
    int allowed;              /* workers that may join this job (threads - 1) */
    int finished;             /* atomic: joined workers done with this job */
    uint64_t generation;      /* atomic: bumped per job; workers watch it */
} ik_pool;

#define IK_CLOSED 0x8000u
static ik_pool g_pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };
static int g_threads = 0;           /* 0: not set (Swift supplies the default) */
static __thread int t_in_job = 0;   /* this thread is running a job's body */

int ik_parallel_threads(void) { return __atomic_load_n(&g_threads, __ATOMIC_RELAXED); }
void ik_parallel_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > IK_MAX_THREADS) n = IK_MAX_THREADS;
    __atomic_store_n(&g_threads, n, __ATOMIC_RELAXED);
}

static long elapsed_ns(const struct timespec *since) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - since->tv_sec) * 1000000000L + (t.tv_nsec - since->tv_nsec);
}

/* Claims and runs indices until none are left: from the front, or from the back.
 *
 * Two ends rather than one counter, for locality between consecutive jobs: loops hand out
 * indices in memory order (rows of pixels, images), so the caller runs the low part of every
 * job and the first worker the high part, wherever the two meet. A layer then mostly reads
 * what the same core wrote in the layer before. With one counter the two interleave, and half
 * of every layer's input crosses between the cores: on this project's 2-vCPU machine, whose
 * vCPUs at times sit far apart (a cache-line round trip of ~365 ns instead of ~100 ns,
 * benchmarks/core_to_core.c), that cost the training step's pooling gradient twice its time.
 * The meeting point still moves with the load, so a busy core just claims fewer. */
static ptrdiff_t claim(ik_pool *p, int from_back) {
    uint64_t r = __atomic_load_n(&p->range, __ATOMIC_RELAXED);
    for (;;) {
        const uint64_t front = r & 0xFFFFFFFFu, back = r >> 32;
        if (front >= back) return -1;
        const uint64_t next = from_back ? ((back - 1) << 32) | front : (back << 32) | (front + 1);
        if (__atomic_compare_exchange_n(&p->range, &r, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return (ptrdiff_t)(from_back ? back - 1 : front);
    }
}

static void drain(ik_pool *p, int from_back) {
    for (ptrdiff_t i; (i = claim(p, from_back)) >= 0;) p->fn(p->ctx, i);
}

static void *worker_main(void *arg) {
    ik_pool *p = arg;
    t_in_job = 1;  /* anything a worker runs is inside a job */
    uint64_t seen = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE);
    for (;;) {
        /* Wait for a new generation: spin for a while, then sleep. */
        uint64_t gen;
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (unsigned spins = 0;; spins++) {
            gen = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE);
            if (gen != seen) break;
            IK_PAUSE();
            if ((spins & 255) == 255 && elapsed_ns(&start) > IK_SPIN_NS) {
                pthread_mutex_lock(&p->lock);
                while ((gen = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE)) == seen)
                    pthread_cond_wait(&p->wake, &p->lock);
                pthread_mutex_unlock(&p->lock);
                break;
            }
        }
        seen = gen;
        /* Join if this job is still open and has room. */
        uint64_t adm = __atomic_load_n(&p->admission, __ATOMIC_ACQUIRE);
        int joined = 0;
        while ((adm >> 16) == (gen & 0xFFFFFFFFFFFFull) && !(adm & IK_CLOSED) &&
               (int)(adm & 0x7FFF) < __atomic_load_n(&p->allowed, __ATOMIC_RELAXED)) {
            if (__atomic_compare_exchange_n(&p->admission, &adm, adm + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                joined = 1;
                break;
            }
        }
        if (!joined) continue;
        drain(p, (adm & 0x7FFF) == 0);  /* adm: the value before this worker joined */
        __atomic_fetch_add(&p->finished, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void run_serial(ptrdiff_t count, void (*fn)(void *, ptrdiff_t), void *ctx) {
    const int was = t_in_job;
    t_in_job = 1;
    for (ptrdiff_t i = 0; i < count; i++) fn(ctx, i);
    t_in_job = was;
}

void ik_parallel_for(int threads, ptrdiff_t count, void (*fn)(void *, ptrdiff_t), void *ctx) {
    if (count <= 0) return;
    if (threads > IK_MAX_THREADS) threads = IK_MAX_THREADS;
    if (threads > count) threads = (int)count;
    if (threads <= 1 || count > 0x7FFFFFFF || t_in_job || pthread_mutex_trylock(&g_pool.submit) != 0) {
        run_serial(count, fn, ctx);
        return;
    }
    ik_pool *p = &g_pool;
    while (p->workers < threads - 1) {  /* start workers on first need */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int ok = pthread_create(&t, &attr, worker_main, p) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        p->workers++;
    }
    if (p->workers == 0) {
        pthread_mutex_unlock(&p->submit);
        run_serial(count, fn, ctx);
        return;
    }
    /* Publish the job, then the new generation (release: workers that see it see the job). */
    const uint64_t gen = __atomic_load_n(&p->generation, __ATOMIC_RELAXED) + 1;
    p->fn = fn;
    p->ctx = ctx;
    p->count = count;
    __atomic_store_n(&p->range, (uint64_t)count << 32, __ATOMIC_RELAXED);
    __atomic_store_n(&p->finished, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->allowed, threads - 1 < p->workers ? threads - 1 : p->workers, __ATOMIC_RELAXED);
    __atomic_store_n(&p->admission, (gen & 0xFFFFFFFFFFFFull) << 16, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->lock);
    __atomic_store_n(&p->generation, gen, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    t_in_job = 1;
    drain(p, 0);
    t_in_job = 0;

    /* Close admission, then wait for the workers that did join. */
    const uint64_t adm = __atomic_fetch_or(&p->admission, IK_CLOSED, __ATOMIC_ACQ_REL);
    const int joined = (int)(adm & 0x7FFF);
    for (unsigned spins = 0; __atomic_load_n(&p->finished, __ATOMIC_ACQUIRE) < joined; spins++) {
        if (spins < 4096) IK_PAUSE();
        else sched_yield();
    }
    pthread_mutex_unlock(&p->submit);
}

/* Per-thread scratch memory, grown on demand and kept for the thread's lifetime: one buffer per
 * slot, each freed by its own pthread key's destructor when the thread exits. */
static pthread_key_t g_scratch_key[IK_SCRATCH_SLOTS];
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static __thread float *t_scratch[IK_SCRATCH_SLOTS];
static __thread size_t t_scratch_count[IK_SCRATCH_SLOTS];
static void scratch_free(void *ptr) { free(ptr); }
static void scratch_key_init(void) {
    for (int s = 0; s < IK_SCRATCH_SLOTS; s++) pthread_key_create(&g_scratch_key[s], scratch_free);
}

float *ik_thread_scratch_slot(int slot, ptrdiff_t count) {
    if (slot < 0 || slot >= IK_SCRATCH_SLOTS) return NULL;
    if (count < 1) count = 1;
    if ((size_t)count > t_scratch_count[slot]) {
        pthread_once(&g_scratch_once, scratch_key_init);
        free(t_scratch[slot]);
        t_scratch[slot] = ik_alloc_floats(count);
        if (!t_scratch[slot]) { t_scratch_count[slot] = 0; pthread_setspecific(g_scratch_key[slot], NULL); return NULL; }
        t_scratch_count[slot] = (size_t)count;
        pthread_setspecific(g_scratch_key[slot], t_scratch[slot]);
    }
    return t_scratch[slot];
}

float *ik_thread_scratch(ptrdiff_t count) { return ik_thread_scratch_slot(0, count); }
