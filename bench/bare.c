/*
 * bare: the floor for the regiond HTTP benchmark.
 *
 * A libmicrohttpd server that answers the two routes bench/regions.lua drives
 * with fixed JSON and no allocator, no JSON parsing, no Swift:
 *
 *   POST   /regions      -> 201 {"offset":0,"size":1048576,"class":0}
 *                             + Location: /regions/0
 *   DELETE /regions/<n>  -> 200 same body   (n: decimal digits)
 *   anything else        -> 404 {"code":"not_found"}
 *
 * It uses the same daemon flags and options as regiond (DESIGN.md §2/§3,
 * /work/shared/notes/libmicrohttpd-from-swift.md), so the ratio
 * regiond/bare measures what regiond's own code costs per request.
 *
 * Request handling follows the notes (§2): the first call only allocates the
 * per-request state, data calls consume the body and set *upload_data_size
 * to 0, and the response is queued on the final call. Queuing on the first
 * call would be an "early reply": MHD adds Connection: close and keep-alive
 * clients lose ~3x throughput. The state is freed in NOTIFY_COMPLETED.
 *
 * Usage: bare --port P [--threads N]
 * Accepted and ignored, so it can stand in for regiond in bench/run.sh:
 *   --host H, --in-memory, --log-level X
 * Prints "listening on http://127.0.0.1:P" and serves until SIGTERM/SIGINT.
 *
 * Build: cc -O2 -o .build/bench/bare bench/bare.c \
 *            $(pkg-config --cflags --libs libmicrohttpd)
 */
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64 * 1024) /* regiond answers 413 above this */

static const char REGION_JSON[] = "{\"offset\":0,\"size\":1048576,\"class\":0}";
static const char NOT_FOUND_JSON[] = "{\"code\":\"not_found\"}";

struct request_state {
    size_t body_len;    /* bytes of body seen */
    size_t body_cap;
    char *body;         /* kept (up to MAX_BODY) as regiond must keep it */
    int too_large;
};

static int all_digits(const char *s) {
    if (*s == '\0') return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *body, size_t len, const char *location) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (location != NULL) MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_data_size,
                               void **req_cls) {
    (void)cls;
    (void)version;
    struct request_state *st = *req_cls;

    /* First call: headers only. Allocate state, queue nothing. */
    if (st == NULL) {
        st = calloc(1, sizeof *st);
        if (st == NULL) return MHD_NO;
        *req_cls = st;
        return MHD_YES;
    }

    /* Data call: consume the chunk. */
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        if (st->body_len + n > MAX_BODY) {
            st->too_large = 1;
        } else {
            if (st->body_len + n > st->body_cap) {
                size_t cap = st->body_cap ? st->body_cap : 256;
                while (cap < st->body_len + n) cap *= 2;
                char *b = realloc(st->body, cap);
                if (b == NULL) return MHD_NO;
                st->body = b;
                st->body_cap = cap;
            }
            memcpy(st->body + st->body_len, upload_data, n);
        }
        st->body_len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }

    /* Final call: answer. */
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strcmp(url, "/regions") == 0) {
        if (st->too_large) {
            static const char big[] = "{\"code\":\"payload_too_large\"}";
            return reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, big, sizeof big - 1, NULL);
        }
        return reply(conn, MHD_HTTP_CREATED, REGION_JSON, sizeof REGION_JSON - 1,
                     "/regions/0");
    }
    if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0 && strncmp(url, "/regions/", 9) == 0 &&
        all_digits(url + 9)) {
        return reply(conn, MHD_HTTP_OK, REGION_JSON, sizeof REGION_JSON - 1, NULL);
    }
    return reply(conn, MHD_HTTP_NOT_FOUND, NOT_FOUND_JSON, sizeof NOT_FOUND_JSON - 1, NULL);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    struct request_state *st = *req_cls;
    if (st != NULL) {
        free(st->body);
        free(st);
        *req_cls = NULL;
    }
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s --port P [--threads N] [--host H] [--in-memory] [--log-level X]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    long port = -1, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--port") == 0 && i + 1 < argc) {
            port = strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            threads = strtol(argv[++i], NULL, 10);
        } else if ((strcmp(a, "--host") == 0 || strcmp(a, "--log-level") == 0) && i + 1 < argc) {
            i++; /* accepted and ignored (bare always binds to all addresses) */
        } else if (strcmp(a, "--in-memory") == 0) {
            /* accepted and ignored */
        } else {
            fprintf(stderr, "bare: unknown argument %s\n", a);
            usage(argv[0]);
        }
    }
    if (port < 0 || port > 65535 || threads < 1) usage(argv[0]);

    /* Block the stop signals before MHD starts its threads (they inherit the
     * mask), then wait for them in main with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 1000, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, NULL,
                                            MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare: MHD_start_daemon failed on port %ld\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned int real_port = info != NULL ? info->port : (unsigned int)port;
    printf("listening on http://127.0.0.1:%u\n", real_port);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    return 0;
}
