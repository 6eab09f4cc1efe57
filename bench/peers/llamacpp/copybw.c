// copybw: the machine's memory copy bandwidth right now, STREAM-copy style, independent of dsk and llama.cpp.
// Each of T threads memcpy's its own 1/T of a SIZE-MiB source into a SIZE-MiB destination (both far larger
// than the caches), REPS times; a pass counts 2*SIZE bytes of traffic (read + write, as STREAM counts "Copy").
// Prints the best and the median pass in GB/s (1e9 bytes/s).   usage: copybw [SIZE_MIB=512] [THREADS=nproc] [REPS=10]
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct { char *dst; const char *src; size_t n; pthread_barrier_t *start, *done; int reps; } job_t;

static void *worker(void *p) {
  job_t *j = p;
  for (int r = 0; r < j->reps; r++) {
    pthread_barrier_wait(j->start);
    memcpy(j->dst, j->src, j->n);
    pthread_barrier_wait(j->done);
  }
  return NULL;
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
  int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  int reps = argc > 3 ? atoi(argv[3]) : 10;
  if (mib == 0 || threads < 1 || reps < 1) { fprintf(stderr, "usage: copybw [SIZE_MIB>0] [THREADS>0] [REPS>0]\n"); return 2; }
  size_t n = mib << 20, chunk = n / threads;
  char *src = aligned_alloc(4096, n), *dst = aligned_alloc(4096, n);
  if (!src || !dst) { fprintf(stderr, "copybw: out of memory\n"); return 1; }
  memset(src, 1, n); memset(dst, 2, n);  // touch every page before timing
  pthread_barrier_t start, done;
  pthread_barrier_init(&start, NULL, threads + 1);
  pthread_barrier_init(&done, NULL, threads + 1);
  pthread_t *tid = calloc(threads, sizeof *tid);
  job_t *jobs = calloc(threads, sizeof *jobs);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (job_t){ dst + t * chunk, src + t * chunk, chunk, &start, &done, reps + 1 };
    pthread_create(&tid[t], NULL, worker, &jobs[t]);
  }
  double *gbs = calloc(reps, sizeof *gbs);
  for (int r = 0; r <= reps; r++) {  // pass 0 is a warm-up
    double t0 = now();
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&done);
    double dt = now() - t0;
    if (r > 0) gbs[r - 1] = 2.0 * chunk * threads / dt / 1e9;
  }
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  qsort(gbs, reps, sizeof *gbs, cmp);
  printf("copy bandwidth: best %.1f GB/s, median %.1f GB/s (%zu MiB, %d threads, %d passes, read+write counted)\n",
         gbs[reps - 1], gbs[reps / 2], mib, threads, reps);
  return 0;
}
