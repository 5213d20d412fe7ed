/*
 * Soak client for regiond: CONNECTIONS pthreads, one blocking keep-alive
 * socket each. Each connection allocates (mostly 1 MiB, some 4 and 16 MiB)
 * until 409 not_enough_space, then releases what it holds, with GET /pool
 * and GET /regions/{offset} mixed in; at the end it releases everything.
 * Anything but 200/201 and the expected 409 not_enough_space is a failure.
 *
 * usage: soak-client PORT REQUESTS CONNECTIONS
 * prints: "requests N seconds S req/s R" and "statuses 200=.. 201=.. 409=..";
 * exits 1 on any unexpected answer or I/O error.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MiB (1ull << 20)
#define MAX_HELD 8192

static int port;
static atomic_long budget;
static atomic_long counts[600];
static atomic_int failed;

struct conn {
    int fd;
    char buf[65536];
    size_t len;
    uint64_t held[MAX_HELD];
    int nheld;
    unsigned seed;
};

static void fail(const char *what, int status, const char *body) {
    if (atomic_fetch_add(&failed, 1) < 10)
        fprintf(stderr, "unexpected: %s -> %d %.200s\n", what, status, body ? body : "");
}

/* Sends one request and reads its response; returns the status (-1 on I/O
 * error) and points *body at the NUL-terminated body inside c->buf. */
static int call(struct conn *c, const char *method, const char *path, const char *json, char **body) {
    char req[512];
    *body = NULL;
    int n = json ? snprintf(req, sizeof req,
                            "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s", method, path, strlen(json), json)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    for (int sent = 0; sent < n;) {
        ssize_t w = send(c->fd, req + sent, n - sent, MSG_NOSIGNAL);
        if (w <= 0) { if (errno == EINTR) continue; return -1; }
        sent += w;
    }
    c->len = 0;
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
        c->len += r;
        c->buf[c->len] = 0;
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) continue;
        char *cl = strcasestr(c->buf, "\r\nContent-Length:");
        size_t length = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        size_t need = (end + 4 - c->buf) + length;
        if (c->len < need) continue;
        if (c->len > need) return -1; /* no pipelining here: extra bytes are a bug */
        *body = end + 4;
        int status = atoi(c->buf + 9);
        if (status > 0 && status < 600) atomic_fetch_add(&counts[status], 1);
        return status;
    }
}

static int take(void) { return atomic_fetch_sub(&budget, 1) > 0; }

static void *run(void *arg) {
    struct conn *c = arg;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) { fail("connect", errno, strerror(errno)); return NULL; }
    int filling = 1;
    char path[64], json[64], *body;
    while (!atomic_load(&failed) && take()) {
        int roll = rand_r(&c->seed) % 100, status;
        if (roll < 15) {
            if ((status = call(c, "GET", "/pool", NULL, &body)) != 200) { fail("GET /pool", status, body); break; }
        } else if (roll < 30 && c->nheld) {
            snprintf(path, sizeof path, "/regions/%llu", (unsigned long long)c->held[rand_r(&c->seed) % c->nheld]);
            if ((status = call(c, "GET", path, NULL, &body)) != 200) { fail(path, status, body); break; }
        } else if (filling && c->nheld < MAX_HELD) {
            unsigned long long size = roll < 90 ? MiB : roll < 97 ? 4 * MiB : 16 * MiB;
            snprintf(json, sizeof json, "{\"size\": %llu}", size);
            status = call(c, "POST", "/regions", json, &body);
            if (status == 201) {
                char *o = strstr(body, "\"offset\":");
                if (!o) { fail("POST /regions (no offset)", status, body); break; }
                c->held[c->nheld++] = strtoull(o + 9, NULL, 10);
            } else if (status == 409 && strstr(body, "not_enough_space")) {
                filling = 0;
            } else { fail("POST /regions", status, body); break; }
        } else if (c->nheld) {
            snprintf(path, sizeof path, "/regions/%llu", (unsigned long long)c->held[--c->nheld]);
            if ((status = call(c, "DELETE", path, NULL, &body)) != 200) { fail(path, status, body); break; }
        } else {
            filling = 1;
            atomic_fetch_add(&budget, 1); /* nothing was sent */
        }
    }
    /* Leave the pool as we found it. */
    while (!atomic_load(&failed) && c->nheld) {
        snprintf(path, sizeof path, "/regions/%llu", (unsigned long long)c->held[--c->nheld]);
        int status = call(c, "DELETE", path, NULL, &body);
        if (status != 200) { fail(path, status, body); break; }
    }
    close(c->fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s PORT REQUESTS CONNECTIONS\n", argv[0]); return 2; }
    port = atoi(argv[1]);
    atomic_store(&budget, atol(argv[2]));
    int n = atoi(argv[3]);
    pthread_t *threads = calloc(n, sizeof *threads);
    struct conn **conns = calloc(n, sizeof *conns);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        conns[i] = calloc(1, sizeof **conns);
        conns[i]->seed = 12345 + i;
        pthread_create(&threads[i], NULL, run, conns[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    long total = 0;
    for (int s = 0; s < 600; s++) total += atomic_load(&counts[s]);
    printf("requests %ld seconds %.2f req/s %.0f\nstatuses", total, secs, total / secs);
    for (int s = 0; s < 600; s++)
        if (atomic_load(&counts[s])) printf(" %d=%ld", s, atomic_load(&counts[s]));
    printf("\n");
    return atomic_load(&failed) ? 1 : 0;
}
