/* C smoke test of the Syros C ABI, linked against the staticlib:
 *
 *   cc -o smoke ffi/tests/c/smoke.c -Iffi/include $CARGO_TARGET_DIR/debug/libsyros_ffi.a -lpthread -ldl -lm
 *   ./smoke 127.0.0.1:<grpc port>
 *
 * Against a running `syros serve`: connect, lock (JSON record + lease handle), a second lock
 * that times out (error record), try_lock, release, cache set/get (base64 bytes), a cancelled
 * wait, a bad argument reported through the callback, calls completed through the completion
 * queue (poll its socket, drain, each outcome with its own user_data), and every handle freed at
 * the end.
 * Prints "c-smoke: N passed, 0 failed" or exits non-zero at the first failed check. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "syros.h"

static int passed = 0;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      exit(1);                                                             \
    }                                                                      \
    passed++;                                                              \
  } while (0)

/* One call's outcome, copied out of the callback (the outcome is only valid during it). */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int status;
  char json[4096];
  SyrosLease *lease;
  SyrosSubscription *subscription;
  SyrosWorker *worker;
  SyrosComputeTicket *ticket;
} Call;

static void call_init(Call *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static void on_done(uintptr_t user_data, const SyrosOutcome *outcome) {
  Call *c = (Call *)user_data;
  pthread_mutex_lock(&c->mu);
  c->status = outcome->status;
  size_t n = outcome->json_len < sizeof c->json - 1 ? outcome->json_len : sizeof c->json - 1;
  memcpy(c->json, outcome->json, n);
  c->json[n] = 0;
  c->lease = outcome->lease;
  c->subscription = outcome->subscription;
  c->worker = outcome->worker;
  c->ticket = outcome->ticket;
  c->done++;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void call_wait(Call *c) {
  pthread_mutex_lock(&c->mu);
  while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

#define S(text) (const uint8_t *)(text), strlen(text)

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
    return 2;
  }
  CHECK(syros_abi_version() == SYROS_ABI_VERSION, "abi version %u", syros_abi_version());

  char config[512];
  snprintf(config, sizeof config, "{\"addresses\": [\"%s\"], \"owner\": \"c-smoke\"}", argv[1]);
  SyrosClient *client = NULL;
  SyrosBuffer err = {0};
  CHECK(syros_client_new(S(config), &client, &err) == SYROS_OK && client, "client_new");

  /* A bad config is an error record in out_error, and no handle. */
  SyrosClient *bad = NULL;
  CHECK(syros_client_new(S("{\"addresses\": 1}"), &bad, &err) == SYROS_ERROR && !bad, "bad config");
  CHECK(err.len > 0 && strstr((const char *)err.data, "invalid_argument"), "bad config error");
  syros_buffer_free(err);

  Call c;
  call_init(&c);
  CHECK(syros_client_connect(client, NULL, on_done, (uintptr_t)&c) == SYROS_OK, "connect started");
  call_wait(&c);
  CHECK(c.status == SYROS_OK, "connect: %s", c.json);

  char key[64];
  snprintf(key, sizeof key, "c-smoke-%d", (int)getpid());
  call_init(&c);
  syros_client_lock(client, S(key), S("{\"ttl_ms\": 10000}"), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK && c.lease, "lock: %s", c.json);
  CHECK(strstr(c.json, "\"fencing_token\":") && strstr(c.json, "\"owner\":\"c-smoke\""), "lease record %s", c.json);
  SyrosLease *lease = c.lease;
  CHECK(syros_lease_is_held(lease) && !syros_lease_is_lost(lease), "held");

  SyrosBuffer info = {0};
  CHECK(syros_lease_info(lease, &info) == SYROS_OK && strstr((const char *)info.data, key), "lease info");
  syros_buffer_free(info);

  /* Held: a second lock waits 100 ms and fails with lock_timeout. */
  call_init(&c);
  syros_client_lock(client, S(key), S("{\"ttl_ms\": 10000, \"wait_ms\": 100}"), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_ERROR && strstr(c.json, "\"code\":\"lock_timeout\"") && !c.lease, "lock_timeout: %s", c.json);

  call_init(&c);
  syros_client_try_lock(client, S(key), S("{\"ttl_ms\": 10000}"), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK && strcmp(c.json, "null") == 0 && !c.lease, "try_lock held: %s", c.json);

  /* A long wait, cancelled: completes with `cancelled`. */
  SyrosCancel *cancel = syros_cancel_new();
  call_init(&c);
  syros_client_lock(client, S(key), S("{\"ttl_ms\": 10000, \"wait_ms\": 30000}"), cancel, on_done, (uintptr_t)&c);
  syros_cancel_cancel(cancel);
  call_wait(&c);
  CHECK(c.status == SYROS_ERROR && strstr(c.json, "\"code\":\"cancelled\""), "cancelled: %s", c.json);
  syros_cancel_free(cancel);

  /* The completion queue: three calls queue their outcomes; the socket becomes readable and the
   * drain hands each out with its own user_data (in a batch of room 2: drain again). */
  int queue_fd = syros_completions_fd();
  SyrosCallback queued = syros_completions_callback();
  CHECK(queue_fd >= 0 && queued, "completion queue fd %d", queue_fd);
  syros_client_lock_status(client, S(key), NULL, queued, 101);
  syros_client_try_lock(client, S(key), S("{\"ttl_ms\": 10000}"), NULL, queued, 102);
  syros_client_append(client, S("s"), S("not json"), S("\"any\""), NULL, queued, 103);
  int seen[3] = {0, 0, 0};
  for (int got = 0; got < 3;) {
    struct pollfd pfd = {queue_fd, POLLIN, 0};
    CHECK(poll(&pfd, 1, 10000) == 1, "the completion socket did not become readable");
    char wakeups[64];
    CHECK(read(queue_fd, wakeups, sizeof wakeups) > 0, "read the completion socket");
    SyrosCompletion batch[2];
    size_t n;
    do {
      n = syros_completions_drain(batch, 2);
      for (size_t i = 0; i < n; i++) {
        const SyrosOutcome *o = &batch[i].outcome;
        char json[1024];
        size_t len = o->json_len < sizeof json - 1 ? o->json_len : sizeof json - 1;
        memcpy(json, o->json, len);
        json[len] = 0;
        switch (batch[i].user_data) {
          case 101: CHECK(o->status == SYROS_OK && strstr(json, key), "queued lock_status: %s", json); break;
          case 102: CHECK(o->status == SYROS_OK && strcmp(json, "null") == 0 && !o->lease, "queued try_lock: %s", json); break;
          case 103: CHECK(o->status == SYROS_ERROR && strstr(json, "invalid_argument"), "queued bad call: %s", json); break;
          default: CHECK(0, "a queued outcome with user_data %lu", (unsigned long)batch[i].user_data);
        }
        seen[batch[i].user_data - 101]++;
        got++;
      }
    } while (n == 2);
  }
  CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1, "each queued call completed once");
  SyrosCompletion none[1];
  CHECK(syros_completions_drain(none, 1) == 0, "the queue is empty after the drain");

  call_init(&c);
  syros_lease_release(lease, NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK, "release: %s", c.json);
  CHECK(!syros_lease_is_held(lease), "released");
  syros_lease_free(lease);

  call_init(&c);
  syros_client_lock_status(client, S(key), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK && strcmp(c.json, "null") == 0, "free after release: %s", c.json);

  /* Bytes cross with explicit lengths (an embedded NUL) and come back as base64. */
  call_init(&c);
  syros_client_cache_set(client, S(key), (const uint8_t *)"a\0b", 3, S("{\"ttl_ms\": 60000, \"tags\": [\"t\"]}"), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK, "cache_set: %s", c.json);
  call_init(&c);
  syros_client_cache_get(client, S(key), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_OK && strstr(c.json, "\"value\":\"YQBi\""), "cache_get: %s", c.json);

  /* A bad argument is reported through the callback, on the calling thread. */
  call_init(&c);
  syros_client_append(client, S("s"), S("not json"), S("\"any\""), NULL, on_done, (uintptr_t)&c);
  CHECK(c.done == 1 && c.status == SYROS_ERROR && strstr(c.json, "invalid_argument"), "bad events: %s", c.json);

  CHECK(syros_client_connect(client, NULL, NULL, 0) == SYROS_NO_CALLBACK, "null callback");

  syros_client_close(client);
  call_init(&c);
  syros_client_cache_get(client, S(key), NULL, on_done, (uintptr_t)&c);
  call_wait(&c);
  CHECK(c.status == SYROS_ERROR && strstr(c.json, "cancelled"), "closed client: %s", c.json);
  syros_client_free(client);

  CHECK(syros_live_handles() == 0, "live handles %lld", (long long)syros_live_handles());
  CHECK(syros_pending_calls() == 0, "pending calls %lld", (long long)syros_pending_calls());
  syros_shutdown(2000);
  printf("c-smoke: %d passed, 0 failed\n", passed);
  return 0;
}
