/* The disk's fdatasync latency, as the journal sees it: a file preallocated
 * in DIR, then COUNT times a 4 KiB pwrite at the next offset followed by
 * fdatasync; prints "FSYNC count=N p50_us=A p90_us=B p99_us=C" (the first
 * 10 rounds are a warm-up and not counted).
 *
 *   bench/fsync DIR [COUNT]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [COUNT]\n", argv[0]);
        return 2;
    }
    int count = argc > 2 ? atoi(argv[2]) : 300;
    if (count < 1) count = 300;
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-probe.XXXXXX", argv[1]);
    int fd = mkstemp(path);
    if (fd < 0) { perror(path); return 1; }
    unlink(path);
    enum { block = 4096, warmup = 10 };
    /* Preallocated, and the zeros written and synced: a 4 KiB write into a
     * fallocate'd ("unwritten") block makes fdatasync also write the extent
     * tree, which the journal pays only once per 4 KiB block (its batches are
     * ~100 bytes), not once per fdatasync. So this measures what a batch's
     * fdatasync mostly costs: its data. */
    if (posix_fallocate(fd, 0, (off_t)(count + warmup) * block) != 0) { perror("posix_fallocate"); return 1; }
    char buffer[block];
    memset(buffer, 0, sizeof buffer);
    for (int i = 0; i < count + warmup; i++)
        if (pwrite(fd, buffer, block, (off_t)i * block) != block) { perror("pwrite"); return 1; }
    if (fsync(fd) != 0) { perror("fsync"); return 1; }
    memset(buffer, 'r', sizeof buffer);
    double *took = malloc(sizeof(double) * count);
    for (int i = 0; i < count + warmup; i++) {
        struct timespec start, end;
        if (pwrite(fd, buffer, block, (off_t)i * block) != block) { perror("pwrite"); return 1; }
        clock_gettime(CLOCK_MONOTONIC, &start);
        if (fdatasync(fd) != 0) { perror("fdatasync"); return 1; }
        clock_gettime(CLOCK_MONOTONIC, &end);
        if (i >= warmup) took[i - warmup] = (end.tv_sec - start.tv_sec) * 1e6 + (end.tv_nsec - start.tv_nsec) / 1e3;
    }
    close(fd);
    qsort(took, count, sizeof(double), compare);
    printf("FSYNC count=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", count, took[count / 2], took[count * 9 / 10],
        took[count * 99 / 100]);
    free(took);
    return 0;
}
