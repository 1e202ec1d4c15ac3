/* Threads: 8 threads each driving their own handle, then 8 threads sharing one handle, with
 * training, sampling, energies and saves interleaved; repeated several rounds. Checks that
 * every call succeeds, every result is finite, the shared handle's step counter equals the
 * number of steps taken, its checkpoint loads, and last-error messages stay per thread.
 * Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include "sance.h"
#include "check.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define OPS 24
#define ROUNDS 10


static char dir[64];
static atomic_long shared_steps;

static SanceConfig small_config(uint64_t seed) {
    SanceConfig c;
    CHECK(sance_config_init(&c, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init");
    c.device = test_device();
    c.hidden_width = 16;
    c.replay_capacity = 128;
    c.seed = seed;
    return c;
}

static int all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

struct job {
    SanceEbm *ebm;
    int id;
    int shared;
};

static void *work(void *arg) {
    struct job *j = arg;
    float data[2 * 32], out[2 * 32], e[32];
    char path[128];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, j->shared ? "shared" : "own");
    if (!j->shared) snprintf(path, sizeof path, "%s/own-%d.safetensors", dir, j->id);
    for (int op = 0; op < OPS; op++) {
        sance_toy_dataset("8gaussians", 32, (uint64_t)(j->id * 1000 + op), data);
        SanceStatus s;
        switch ((op + j->id) % 4) {
        case 0: {
            SanceStepStats st;
            s = sance_ebm_train_step(j->ebm, data, 32, &st);
            CHECK(s == SANCE_STATUS_OK && isfinite(st.loss), "train: %s", sance_last_error());
            if (j->shared && s == SANCE_STATUS_OK) atomic_fetch_add(&shared_steps, 1);
            break;
        }
        case 1:
            s = sance_ebm_sample(j->ebm, 32, NULL, out);
            CHECK(s == SANCE_STATUS_OK && all_finite(out, 64), "sample: %s", sance_last_error());
            break;
        case 2:
            s = sance_ebm_energy(j->ebm, data, 32, e);
            CHECK(s == SANCE_STATUS_OK && all_finite(e, 32), "energy: %s", sance_last_error());
            break;
        default:
            s = sance_ebm_save(j->ebm, path);
            CHECK(s == SANCE_STATUS_OK, "save: %s", sance_last_error());
        }
        /* A failure on this thread shows this thread's message, whatever the others do. */
        if (op % 6 == 5) {
            char name[32];
            snprintf(name, sizeof name, "nope-%d", j->id);
            CHECK(sance_toy_dataset(name, 1, 0, out) == SANCE_STATUS_INVALID_ARGUMENT, "bad name accepted");
            sched_yield();
            CHECK(strstr(sance_last_error(), name) != NULL, "thread %d sees '%s'", j->id, sance_last_error());
        }
    }
    return NULL;
}

static void run(SanceEbm **handles, int shared) {
    pthread_t t[THREADS];
    struct job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct job){shared ? handles[0] : handles[i], i, shared};
        pthread_create(&t[i], NULL, work, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/sance-threads-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    for (int round = 0; round < ROUNDS; round++) {
        SanceEbm *own[THREADS];
        for (int i = 0; i < THREADS; i++) {
            SanceConfig c = small_config((uint64_t)i);
            CHECK(sance_ebm_new(&c, &own[i]) == SANCE_STATUS_OK, "new: %s", sance_last_error());
        }
        run(own, 0);
        for (int i = 0; i < THREADS; i++) sance_ebm_free(own[i]);

        SanceConfig c = small_config(99);
        SanceEbm *shared = NULL;
        CHECK(sance_ebm_new(&c, &shared) == SANCE_STATUS_OK, "new shared");
        atomic_store(&shared_steps, 0);
        run(&shared, 1);
        SanceProgress p;
        CHECK(sance_ebm_progress(shared, &p) == SANCE_STATUS_OK && (long)p.step == atomic_load(&shared_steps),
              "shared handle counted %llu steps, threads took %ld", (unsigned long long)p.step, atomic_load(&shared_steps));
        char path[128];
        snprintf(path, sizeof path, "%s/shared.safetensors", dir);
        SanceEbm *back = NULL;
        CHECK(sance_ebm_load(path, test_device(), &back) == SANCE_STATUS_OK, "shared checkpoint loads: %s",
              sance_last_error());
        sance_ebm_free(back);
        sance_ebm_free(shared);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
    return check_summary();
}
