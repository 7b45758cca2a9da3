/* Machine floor for the cross-thread round trip, no Python involved.
 * Build: gcc -O2 -pthread floor.c -o build/floor
 * Run:   build/floor [round_trips] [split|same]   (split: pin the threads to CPUs 0 and 1;
 *        same: pin both to CPU 0; default: let the scheduler place them)
 * Prints ns per: syscall (getppid), FUTEX_WAKE with nobody waiting, round trip of two
 * threads ping-ponging through futex sleep/wake, and through pure spinning. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long N = 20000;
static _Atomic uint32_t ping, pong; /* sequence numbers */
static int spin_mode;
static int pin = -1; /* -1 none, 0 both on cpu0, 1 split */

static void pin_to(int cpu) {
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static void fwait(_Atomic uint32_t *a, uint32_t v) { syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); }
static void fwake(_Atomic uint32_t *a) { syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void await_value(_Atomic uint32_t *a, uint32_t want) {
    while (atomic_load(a) != want) {
        if (spin_mode) __builtin_ia32_pause();
        else fwait(a, want - 1);
    }
}

static void *other(void *arg) {
    if (pin >= 0) pin_to(pin == 1 ? 1 : 0);
    for (uint32_t i = 1; i <= N; i++) {
        await_value(&ping, i);
        atomic_store(&pong, i);
        if (!spin_mode) fwake(&pong);
    }
    return NULL;
}

static double roundtrip(int spin) {
    pthread_t t; spin_mode = spin; atomic_store(&ping, 0); atomic_store(&pong, 0);
    pthread_create(&t, NULL, other, NULL);
    double t0 = now();
    for (uint32_t i = 1; i <= N; i++) {
        atomic_store(&ping, i);
        if (!spin) fwake(&ping);
        await_value(&pong, i);
    }
    double dt = now() - t0;
    pthread_join(t, NULL);
    return dt / N;
}

int main(int argc, char **argv) {
    if (argc > 1) N = atol(argv[1]);
    if (argc > 2) pin = argv[2][0] == 's' && argv[2][1] == 'p' ? 1 : 0;
    if (pin >= 0) pin_to(0);
    double t0 = now();
    for (long i = 0; i < N; i++) syscall(SYS_getppid);
    printf("syscall getppid          %8.0f ns\n", (now() - t0) / N);
    _Atomic uint32_t x = 0;
    t0 = now();
    for (long i = 0; i < N; i++) fwake(&x);
    printf("futex_wake, no waiter    %8.0f ns\n", (now() - t0) / N);
    for (int r = 0; r < (pin == 0 ? 1 : 3); r++) {
        printf("futex ping-pong RT       %8.0f ns\n", roundtrip(0));
        if (pin != 0) printf("spin  ping-pong RT       %8.0f ns\n", roundtrip(1)); /* never spin on one CPU */
    }
    return 0;
}
