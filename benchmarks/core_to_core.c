/* Cache-line round trip between two CPUs: one thread pinned to CPU A writes a flag, one pinned
 * to CPU B answers, 200000 times; prints nanoseconds per round trip. On the development machine
 * (a 2-vCPU VM) it reads ~100 ns when the two vCPUs share a die and ~365 ns in the periods when
 * they do not, which is when `inception bench` with 2 threads runs 35–40% slower (BENCHMARKS.md).
 * Build and run: clang -O2 benchmarks/core_to_core.c -lpthread -o /tmp/c2c && /tmp/c2c [A B] */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 200000
static volatile int flag __attribute__((aligned(64)));
static int cpu_a = 0, cpu_b = 1;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *unused) {
    (void)unused;
    pin(cpu_b);
    for (int i = 0; i < ROUNDS; i++) {
        while (flag != 1) { }
        flag = 0;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 2) { cpu_a = atoi(argv[1]); cpu_b = atoi(argv[2]); }
    pthread_t t;
    pthread_create(&t, NULL, answer, NULL);
    pin(cpu_a);
    const double t0 = now();
    for (int i = 0; i < ROUNDS; i++) {
        flag = 1;
        while (flag != 0) { }
    }
    const double dt = now() - t0;
    pthread_join(t, NULL);
    printf("CPU %d <-> CPU %d: %.0f ns per round trip\n", cpu_a, cpu_b, dt / ROUNDS * 1e9);
    return 0;
}
