/*
 * test_mock.c: the test of resend-mock (tests/resend/README.md), ctest `resend_mock`.
 *
 *   test_resend_mock PATH/TO/resend-mock
 *
 * Each test starts its own server (--port 0 --port-file, plus the options it needs), talks to it
 * with libcurl as a client of Resend would, and stops it by its PID with SIGTERM: the server must
 * then exit with status 0. RESEND_MOCK_WRAPPER, when set, is a command the server runs under
 * (split on spaces), e.g. "valgrind -q --leak-check=full --error-exitcode=99": a report then fails
 * the test through that exit status.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#define KEY "re_test_key"
#define AUTH "Authorization: Bearer " KEY
#define JSON "Content-Type: application/json"
#define FROM "Acme <onboarding@acme.dev>"
#define VALID "{\"from\":\"" "Acme <onboarding@acme.dev>" "\",\"to\":\"ada@example.com\"," \
              "\"subject\":\"Welcome\",\"html\":\"<p>Hi</p>\"}"
#define ADDRESS_FORMAT                                                                             \
  "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."

static const char *mock_path;
static char tmp_dir[256];
static pid_t mock_pid;
static int mock_port;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the server ---- */

/* argv for the server: the wrapper's words, then resend-mock and args (NULL-terminated).
 * Returns a static array whose strings live until the next call. */
static char **server_argv(const char *const *args) {
  static char *argv[64];
  static char wrapper[512];
  int n = 0;
  const char *w = getenv("RESEND_MOCK_WRAPPER");
  if (w != NULL && *w != '\0') {
    snprintf(wrapper, sizeof wrapper, "%s", w);
    for (char *t = strtok(wrapper, " "); t != NULL && n < 32; t = strtok(NULL, " "))
      argv[n++] = t;
  }
  argv[n++] = (char *)mock_path;
  for (int i = 0; args[i] != NULL && n < 63; i++)
    argv[n++] = (char *)args[i];
  argv[n] = NULL;
  return argv;
}

/* Starts resend-mock with --port 0 --port-file and the given options (NULL-terminated), and waits
 * until it has written its port. */
static void mock_start(const char *first, ...) {
  char port_file[300];
  snprintf(port_file, sizeof port_file, "%s/port", tmp_dir);
  unlink(port_file);
  const char *args[40] = {"--port", "0", "--port-file", port_file};
  int n = 4;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && n < 39; a = va_arg(ap, const char *))
    args[n++] = a;
  va_end(ap);
  args[n] = NULL;
  char **argv = server_argv(args);
  mock_pid = fork();
  assert_true(mock_pid >= 0);
  if (mock_pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0 && getenv("RESEND_MOCK_VERBOSE") == NULL)
      dup2(devnull, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  int64_t deadline = now_ms() + 30000;
  for (;;) {
    FILE *f = fopen(port_file, "r");
    if (f != NULL) {
      int ok = fscanf(f, "%d", &mock_port) == 1;
      fclose(f);
      if (ok)
        break;
    }
    int status;
    if (waitpid(mock_pid, &status, WNOHANG) == mock_pid)
      fail_msg("resend-mock exited before listening (status %d)", status);
    if (now_ms() > deadline)
      fail_msg("resend-mock did not write its port file within 30 s");
    sleep_ms(5);
  }
}

/* Stops the server with sig and checks that it exits with status 0 on its own. */
static void mock_stop_with(int sig) {
  if (mock_pid <= 0)
    return;
  pid_t pid = mock_pid;
  mock_pid = 0;
  kill(pid, sig);
  int status = 0;
  int64_t deadline = now_ms() + 30000;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("resend-mock did not stop within 30 s of signal %d", sig);
    }
    sleep_ms(5);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("resend-mock did not exit cleanly: %s %d", WIFEXITED(status) ? "exit" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static int teardown(void **state) {
  (void)state;
  mock_stop_with(SIGTERM);
  return 0;
}

/* Runs resend-mock with args (NULL-terminated) to its end; returns its exit status and up to
 * out_len bytes of its standard output and error. */
static int mock_run(char *out, size_t out_len, const char *first, ...) {
  const char *args[20];
  int n = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && n < 19; a = va_arg(ap, const char *))
    args[n++] = a;
  va_end(ap);
  args[n] = NULL;
  char **argv = server_argv(args);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t got;
  char sink[4096];
  while ((got = read(fds[0], sink, sizeof sink)) > 0) {
    size_t take = (size_t)got < out_len - 1 - len ? (size_t)got : out_len - 1 - len;
    memcpy(out + len, sink, take);
    len += take;
  }
  out[len] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- HTTP ---- */

typedef struct resp {
  CURLcode rc;
  long status;
  double seconds;
  char *body;
  size_t len;
  char *headers; /* the response's header lines */
  size_t hlen;
  json_t *json; /* the body parsed, or NULL */
  struct curl_slist *request_headers;
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  resp *r = arg;
  size_t add = size * n;
  char *grown = realloc(r->body, r->len + add + 1);
  if (grown == NULL)
    return 0;
  r->body = grown;
  memcpy(r->body + r->len, p, add);
  r->len += add;
  r->body[r->len] = '\0';
  return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  resp *r = arg;
  size_t add = size * n;
  char *grown = realloc(r->headers, r->hlen + add + 1);
  if (grown == NULL)
    return 0;
  r->headers = grown;
  memcpy(r->headers + r->hlen, p, add);
  r->hlen += add;
  r->headers[r->hlen] = '\0';
  return add;
}

static void resp_free(resp *r) {
  free(r->body);
  free(r->headers);
  json_decref(r->json);
  curl_slist_free_all(r->request_headers);
  memset(r, 0, sizeof *r);
}

/* A request ready to run: method, path, body (NULL: none; len bytes, or strlen when len is 0)
 * and extra header lines (NULL-terminated; a body gets Content-Type: application/json). */
static CURL *easy_new(resp *r, const char *method, const char *path, const char *body, size_t len,
                      const char *const *headers) {
  memset(r, 0, sizeof *r);
  CURL *c = curl_easy_init();
  assert_non_null(c);
  char url[600];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", mock_port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(len ? len : strlen(body)));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    r->request_headers = curl_slist_append(r->request_headers, JSON);
  }
  for (int i = 0; headers != NULL && headers[i] != NULL; i++)
    r->request_headers = curl_slist_append(r->request_headers, headers[i]);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->request_headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "skene-test/1.0"); /* libcurl sends none by default */
  return c;
}

static void easy_done(CURL *c, resp *r, CURLcode rc) {
  r->rc = rc;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
  if (r->body != NULL)
    r->json = json_loads(r->body, JSON_DECODE_ANY, NULL);
  curl_easy_cleanup(c);
}

/* Runs one request; headers as for easy_new. */
static void request(resp *r, const char *method, const char *path, const char *body,
                    const char *const *headers) {
  CURL *c = easy_new(r, method, path, body, 0, headers);
  easy_done(c, r, curl_easy_perform(c));
}

/* POST /emails with the test's key, and an Idempotency-Key when key is not NULL. */
static void send_email(resp *r, const char *body, const char *key) {
  char idem[400];
  snprintf(idem, sizeof idem, "Idempotency-Key: %s", key ? key : "");
  const char *headers[] = {AUTH, key ? idem : NULL, NULL};
  request(r, "POST", "/emails", body, headers);
}

/* The value of a response header (case-insensitive name), in a static buffer, or NULL. */
static const char *header(const resp *r, const char *name) {
  static char value[256];
  size_t n = strlen(name);
  for (const char *line = r->headers; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1;
      while (*v == ' ')
        v++;
      size_t len = (size_t)((end ? end : line + strlen(line)) - v);
      while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
      snprintf(value, sizeof value, "%.*s", (int)len, v);
      return value;
    }
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

static const char *jstr(const json_t *o, const char *field) {
  const char *s = json_string_value(json_object_get(o, field));
  return s ? s : "(not a string)";
}

/* The response is Resend's error: that status and body {statusCode, message, name}. */
static void expect_error(const resp *r, long status, const char *name, const char *message) {
  assert_int_equal(r->rc, CURLE_OK);
  if (r->status != status || r->json == NULL)
    fail_msg("expected %ld %s, got %ld: %s", status, name, r->status, r->body ? r->body : "");
  assert_int_equal(json_integer_value(json_object_get(r->json, "statusCode")), status);
  assert_string_equal(jstr(r->json, "name"), name);
  assert_string_equal(jstr(r->json, "message"), message);
  assert_int_equal(json_object_size(r->json), 3);
}

/* The response is 200 {"id": "<uuid>"}; returns the id (a new string). */
static char *expect_id(const resp *r) {
  assert_int_equal(r->rc, CURLE_OK);
  if (r->status != 200 || r->json == NULL)
    fail_msg("expected 200, got %ld: %s", r->status, r->body ? r->body : "");
  const char *id = jstr(r->json, "id");
  assert_int_equal(strlen(id), 36);
  assert_true(id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-' && id[14] == '4');
  return strdup(id);
}

/* GET of the control API, parsed. */
static json_t *control_get(const char *path) {
  resp r;
  request(&r, "GET", path, NULL, NULL);
  assert_int_equal(r.status, 200);
  json_t *j = json_incref(r.json);
  resp_free(&r);
  assert_non_null(j);
  return j;
}

static long stat_of(const char *name) {
  json_t *s = control_get("/_mock/stats");
  long v = (long)json_integer_value(json_object_get(s, name));
  json_decref(s);
  return v;
}

static long status_count(long status) {
  char key[16];
  snprintf(key, sizeof key, "%ld", status);
  json_t *s = control_get("/_mock/stats");
  long v = (long)json_integer_value(json_object_get(json_object_get(s, "by_status"), key));
  json_decref(s);
  return v;
}

static size_t emails_listed(void) {
  json_t *list = control_get("/_mock/emails");
  size_t n = json_array_size(list);
  json_decref(list);
  return n;
}

static void set_faults(const char *script) {
  resp r;
  request(&r, "POST", "/_mock/faults", script, NULL);
  if (r.status != 200)
    fail_msg("POST /_mock/faults: %ld %s", r.status, r.body ? r.body : "");
  resp_free(&r);
}

/* A batch of n copies of VALID, as JSON text (the caller frees it). */
static char *batch_of(size_t n) {
  size_t cap = n * (sizeof VALID + 1) + 3;
  char *s = calloc(cap, 1);
  assert_non_null(s);
  strcat(s, "[");
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(s, ",");
    strcat(s, VALID);
  }
  strcat(s, "]");
  return s;
}

/* ---- tests ---- */

static void test_command_line(void **state) {
  (void)state;
  char out[8192];
  assert_int_equal(mock_run(out, sizeof out, "--help", NULL), 0);
  const char *documented[] = {"--port N", "--port-file FILE", "--api-key KEY", "--rps N",
                              "--idempotency-ttl-ms MS", "--faults FILE", "--log FILE", "--help",
                              "/_mock/emails", "/_mock/stats", "/_mock/faults", "/_mock/reset",
                              "after_accept", "SIGTERM"};
  for (size_t i = 0; i < sizeof documented / sizeof *documented; i++)
    if (strstr(out, documented[i]) == NULL)
      fail_msg("--help does not mention %s", documented[i]);
  assert_int_equal(mock_run(out, sizeof out, "--bogus", NULL), 2);
  assert_non_null(strstr(out, "unknown argument '--bogus'"));
  assert_int_equal(mock_run(out, sizeof out, "--rps", "many", NULL), 2);
  assert_int_equal(mock_run(out, sizeof out, "--port", "70000", NULL), 2);
  assert_int_equal(mock_run(out, sizeof out, "--api-key", "sk_live", NULL), 2);
  assert_int_equal(mock_run(out, sizeof out, "--faults", "/nonexistent/faults.json", NULL), 2);
  char bad[300];
  snprintf(bad, sizeof bad, "%s/bad-faults.json", tmp_dir);
  FILE *f = fopen(bad, "w");
  assert_non_null(f);
  fputs("{\"faults\":[{\"status\":500,\"colour\":\"red\"}]}", f);
  fclose(f);
  assert_int_equal(mock_run(out, sizeof out, "--faults", bad, NULL), 2);
  assert_non_null(strstr(out, "unknown field \"colour\""));
}

static void test_stops_on_sigint(void **state) {
  (void)state;
  mock_start(NULL);
  resp r;
  send_email(&r, VALID, NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  mock_stop_with(SIGINT);
}

static void test_auth(void **state) {
  (void)state;
  mock_start("--api-key", "re_good", "--rps", "0", NULL);
  resp r;
  request(&r, "POST", "/emails", VALID, NULL);
  expect_error(&r, 401, "missing_api_key", "Missing API key in the authorization header");
  resp_free(&r);
  const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
  request(&r, "POST", "/emails", VALID, basic);
  expect_error(&r, 401, "missing_api_key", "Missing API key in the authorization header");
  resp_free(&r);
  const char *malformed[] = {"Authorization: Bearer sk_live_123", NULL};
  request(&r, "POST", "/emails", VALID, malformed);
  expect_error(&r, 400, "validation_error", "API key is invalid");
  resp_free(&r);
  const char *wrong[] = {"Authorization: Bearer re_wrong", NULL};
  request(&r, "POST", "/emails", VALID, wrong);
  expect_error(&r, 401, "validation_error", "API key is invalid");
  assert_null(header(&r, "ratelimit-limit")); /* --rps 0: no rate-limit headers */
  resp_free(&r);
  const char *good[] = {"Authorization: bearer   re_good  ", NULL};
  request(&r, "POST", "/emails", VALID, good);
  free(expect_id(&r));
  resp_free(&r);
  request(&r, "GET", "/emails/00000000-0000-4000-8000-000000000000", NULL, NULL);
  expect_error(&r, 401, "missing_api_key", "Missing API key in the authorization header");
  resp_free(&r);
  /* No User-Agent: blocked before the API, whatever the key (libcurl sends none unless told). */
  const char *no_agent[] = {"Authorization: Bearer re_good", "User-Agent:", NULL};
  request(&r, "POST", "/emails", VALID, no_agent);
  assert_int_equal(r.status, 403);
  assert_string_equal(r.body, "error code: 1010");
  resp_free(&r);
  assert_int_equal(emails_listed(), 1);
  assert_int_equal(status_count(401), 4);
  assert_int_equal(status_count(403), 1);
  assert_int_equal(status_count(400), 1);
  assert_int_equal(status_count(200), 1);
  assert_int_equal(stat_of("requests"), 7);
}

static void test_validation(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  static const struct {
    const char *body;
    long status;
    const char *name, *message;
  } cases[] = {
      {"{\"from\":", 400, "validation_error", "The request body is not valid JSON."},
      {"[1]", 422, "validation_error", "The request body must be an `object`."},
      {"{\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":\"h\"}", 422, "missing_required_field",
       "Missing `from` field."},
      {"{\"from\":\"" FROM "\",\"subject\":\"s\",\"html\":\"h\"}", 422, "missing_required_field",
       "Missing `to` field."},
      {"{\"from\":\"" FROM "\",\"to\":[],\"subject\":\"s\",\"html\":\"h\"}", 422,
       "missing_required_field", "Missing `to` field."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"html\":\"h\"}", 422, "missing_required_field",
       "Missing `subject` field."},
      {"{\"from\":\"acme\",\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":\"h\"}", 422,
       "validation_error", "Invalid `from` field. " ADDRESS_FORMAT},
      {"{\"from\":\"\\\"Acme <a@acme.dev>\\\"\",\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":\"h\"}",
       422, "validation_error", "Invalid `from` field. " ADDRESS_FORMAT},
      {"{\"from\":42,\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":\"h\"}", 422, "validation_error",
       "The `from` field must be a `string`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@localhost\",\"subject\":\"s\",\"html\":\"h\"}", 422,
       "validation_error", "Invalid `to` field. " ADDRESS_FORMAT},
      {"{\"from\":\"" FROM "\",\"to\":5,\"subject\":\"s\",\"html\":\"h\"}", 422,
       "validation_error", "The `to` field must be a `string`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":[\"s\"],\"html\":\"h\"}", 422,
       "validation_error", "The `subject` field must be a `string`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\"}", 422,
       "missing_required_field", "Missing `html` or `text` field."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":5}", 422,
       "validation_error", "The `html` field must be a `string`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"cc\":[\"ok@x.co\",\"not an address\"]}",
       422, "validation_error", "Invalid `cc` field. " ADDRESS_FORMAT},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"bcc\":\"b@@x.co\"}",
       422, "validation_error", "Invalid `bcc` field. " ADDRESS_FORMAT},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"reply_to\":\"support\"}",
       422, "validation_error", "Invalid `reply_to` field. " ADDRESS_FORMAT},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"template\":{\"id\":\"welcome\"},"
       "\"html\":\"h\"}",
       422, "validation_error",
       "The `html` and `text` fields cannot be used together with a `template`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"template\":{\"variables\":{}}}", 422,
       "missing_required_field", "Missing `template.id` field."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"template\":{\"id\":\"t\","
       "\"variables\":{\"EMAIL\":\"a@x.co\"}}}",
       422, "validation_error", "The template variable `EMAIL` is reserved."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"template\":{\"id\":\"t\","
       "\"variables\":{\"user\":{\"name\":\"Ada\"}}}}",
       422, "validation_error", "The template variable `user` must be a `string` or a `number`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"template\":{\"id\":\"t\","
       "\"variables\":{\"big\":9007199254740992}}}",
       422, "validation_error",
       "The template variable `big` must not be greater than 9007199254740991."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"tags\":[{\"name\":\"a tag\",\"value\":\"v\"}]}",
       422, "validation_error",
       "Invalid `tags[0].name` field. It can only contain ASCII letters (a-z, A-Z), numbers "
       "(0-9), underscores (_), or dashes (-), and no more than 256 characters."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"tags\":[{\"name\":\"ok\",\"value\":\"v\"},{\"name\":\"category\"}]}",
       422, "missing_required_field", "Missing `tags[1].value` field."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"headers\":{\"X-Entity-Ref-ID\":123}}",
       422, "validation_error", "The `headers.X-Entity-Ref-ID` field must be a `string`."},
      {"{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
       "\"attachments\":[{\"filename\":\"invoice.pdf\"}]}",
       422, "invalid_attachment", "Attachment must have either a `content` or `path`."},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    resp r;
    send_email(&r, cases[i].body, NULL);
    expect_error(&r, cases[i].status, cases[i].name, cases[i].message);
    resp_free(&r);
  }
  /* 51 recipients */
  char body[4096] = "{\"from\":\"" FROM "\",\"subject\":\"s\",\"text\":\"t\",\"to\":[";
  for (int i = 0; i < 51; i++)
    snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"u%d@x.co\"", i ? "," : "", i);
  strcat(body, "]}");
  resp r;
  send_email(&r, body, NULL);
  expect_error(&r, 422, "validation_error",
               "Too many recipients in the `to` field. The maximum is 50.");
  resp_free(&r);
  strcpy(strstr(body, ",\"u50@x.co\""), "]}"); /* 50 is fine */
  send_email(&r, body, NULL);
  free(expect_id(&r));
  resp_free(&r);
  assert_int_equal(emails_listed(), 1);
  assert_int_equal(stat_of("accepted_emails"), 1);
}

static void test_size_limit(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  const char *head = "{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"html\":\"";
  size_t html = 40u * 1024u * 1024u + 1;
  size_t len = strlen(head) + html + 2;
  char *body = malloc(len + 1);
  assert_non_null(body);
  memcpy(body, head, strlen(head));
  memset(body + strlen(head), 'x', html);
  memcpy(body + strlen(head) + html, "\"}", 3);
  const char *headers[] = {AUTH, NULL};
  resp r;
  CURL *c = easy_new(&r, "POST", "/emails", body, len, headers);
  easy_done(c, &r, curl_easy_perform(c));
  expect_error(&r, 422, "validation_error", "The email is larger than the maximum of 40MB.");
  resp_free(&r);
  /* A large email within the limit goes through. */
  memcpy(body + strlen(head) + 1024 * 1024, "\"}", 3);
  send_email(&r, body, NULL);
  free(expect_id(&r));
  resp_free(&r);
  free(body);
  assert_int_equal(emails_listed(), 1);
}

static void test_plain_and_template_emails(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  const char *plain =
      "{\"from\":\"" FROM "\",\"to\":[\"ada@example.com\",\"Grace <grace@example.org>\"],"
      "\"subject\":\"Welcome\",\"html\":\"<p>Hi</p>\",\"text\":\"Hi\",\"cc\":\"cc@example.com\","
      "\"bcc\":[\"bcc@example.com\"],\"reply_to\":\"support@acme.dev\","
      "\"tags\":[{\"name\":\"category\",\"value\":\"welcome_email\"}],"
      "\"headers\":{\"X-Entity-Ref-ID\":\"123\"},\"unknown_field\":true}";
  const char *tmpl = "{\"from\":\"" FROM "\",\"to\":\"lin@example.com\",\"template\":"
                     "{\"id\":\"welcome-v2\",\"variables\":{\"NAME\":\"Lin\",\"COUNT\":3}}}";
  const char *tmpl_defaults = "{\"to\":\"kim@example.com\",\"template\":{\"id\":\"digest\"}}";
  resp r;
  send_email(&r, plain, NULL);
  char *id1 = expect_id(&r);
  resp_free(&r);
  send_email(&r, tmpl, NULL);
  char *id2 = expect_id(&r);
  resp_free(&r);
  send_email(&r, tmpl_defaults, NULL);
  char *id3 = expect_id(&r);
  resp_free(&r);
  assert_string_not_equal(id1, id2);
  assert_string_not_equal(id2, id3);

  json_t *list = control_get("/_mock/emails");
  assert_int_equal(json_array_size(list), 3);
  json_t *e1 = json_array_get(list, 0), *e2 = json_array_get(list, 1);
  assert_string_equal(jstr(e1, "id"), id1);
  assert_string_equal(jstr(e1, "api_key"), KEY);
  assert_true(json_is_null(json_object_get(e1, "idempotency_key")));
  assert_string_equal(jstr(e1, "endpoint"), "/emails");
  assert_true(json_is_null(json_object_get(e1, "batch_index")));
  json_t *sent = json_loads(plain, 0, NULL);
  assert_true(json_equal(json_object_get(e1, "request"), sent));
  json_decref(sent);
  assert_string_equal(jstr(e2, "id"), id2);
  json_t *t = json_object_get(json_object_get(e2, "request"), "template");
  assert_string_equal(jstr(t, "id"), "welcome-v2");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "variables"), "COUNT")),
                   3);
  assert_string_equal(jstr(json_array_get(list, 2), "id"), id3);
  json_decref(list);

  /* GET /emails/{id} as Resend returns it. */
  char path[100];
  snprintf(path, sizeof path, "/emails/%s", id1);
  const char *auth[] = {AUTH, NULL};
  request(&r, "GET", path, NULL, auth);
  assert_int_equal(r.status, 200);
  assert_string_equal(jstr(r.json, "object"), "email");
  assert_string_equal(jstr(r.json, "id"), id1);
  assert_string_equal(jstr(r.json, "from"), FROM);
  assert_string_equal(jstr(r.json, "subject"), "Welcome");
  assert_string_equal(jstr(r.json, "html"), "<p>Hi</p>");
  assert_string_equal(jstr(r.json, "text"), "Hi");
  assert_string_equal(jstr(r.json, "last_event"), "delivered");
  assert_int_equal(json_array_size(json_object_get(r.json, "to")), 2);
  assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "cc"), 0)),
                      "cc@example.com");
  assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "reply_to"), 0)),
                      "support@acme.dev");
  assert_string_equal(jstr(json_array_get(json_object_get(r.json, "tags"), 0), "value"),
                      "welcome_email");
  assert_true(json_is_null(json_object_get(r.json, "scheduled_at")));
  assert_int_equal(strlen(jstr(r.json, "created_at")), strlen("2026-04-03 22:13:42.674981+00"));
  resp_free(&r);
  snprintf(path, sizeof path, "/emails/%s", id2);
  request(&r, "GET", path, NULL, auth);
  assert_int_equal(r.status, 200);
  assert_true(json_is_null(json_object_get(r.json, "html")));
  assert_true(json_is_null(json_object_get(r.json, "subject")));
  resp_free(&r);
  request(&r, "GET", "/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c", NULL, auth);
  expect_error(&r, 404, "not_found", "Email not found");
  resp_free(&r);
  const char *other[] = {"Authorization: Bearer re_other_team", NULL};
  snprintf(path, sizeof path, "/emails/%s", id1);
  request(&r, "GET", path, NULL, other);
  expect_error(&r, 404, "not_found", "Email not found");
  resp_free(&r);
  free(id1);
  free(id2);
  free(id3);
}

static void test_routes(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  const char *auth[] = {AUTH, NULL};
  resp r;
  request(&r, "POST", "/domains", "{}", auth);
  expect_error(&r, 404, "not_found", "The requested endpoint does not exist.");
  resp_free(&r);
  request(&r, "DELETE", "/emails", NULL, auth);
  expect_error(&r, 405, "method_not_allowed", "Method is not allowed for the requested path.");
  resp_free(&r);
  request(&r, "GET", "/emails/batch", NULL, auth);
  expect_error(&r, 405, "method_not_allowed", "Method is not allowed for the requested path.");
  resp_free(&r);
  request(&r, "PATCH", "/emails/some-id", "{}", auth);
  expect_error(&r, 405, "method_not_allowed", "Method is not allowed for the requested path.");
  resp_free(&r);
  request(&r, "GET", "/_mock/nothing", NULL, NULL);
  assert_int_equal(r.status, 404);
  resp_free(&r);
  request(&r, "DELETE", "/_mock/emails", NULL, NULL);
  assert_int_equal(r.status, 405);
  resp_free(&r);
  assert_int_equal(stat_of("requests"), 4); /* the control API is not counted */
}

static void test_batch_strict(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  const char *auth[] = {AUTH, NULL};
  const char *strict[] = {AUTH, "x-batch-validation: strict", NULL};
  resp r;
  char *two = batch_of(2);
  request(&r, "POST", "/emails/batch", two, auth);
  assert_int_equal(r.status, 200);
  json_t *data = json_object_get(r.json, "data");
  assert_int_equal(json_array_size(data), 2);
  assert_null(json_object_get(r.json, "errors"));
  assert_string_not_equal(jstr(json_array_get(data, 0), "id"), jstr(json_array_get(data, 1), "id"));
  json_t *list = control_get("/_mock/emails");
  assert_int_equal(json_array_size(list), 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *e = json_array_get(list, i);
    assert_string_equal(jstr(e, "endpoint"), "/emails/batch");
    assert_int_equal(json_integer_value(json_object_get(e, "batch_index")), i);
    assert_string_equal(jstr(e, "id"), jstr(json_array_get(data, i), "id"));
  }
  json_decref(list);
  resp_free(&r);
  free(two);

  const char *one_bad = "[" VALID ",{\"from\":\"" FROM "\",\"subject\":\"s\",\"text\":\"t\"}," VALID "]";
  request(&r, "POST", "/emails/batch", one_bad, auth);
  expect_error(&r, 422, "missing_required_field", "Missing `to` field.");
  resp_free(&r);
  request(&r, "POST", "/emails/batch", one_bad, strict);
  expect_error(&r, 422, "missing_required_field", "Missing `to` field.");
  resp_free(&r);
  char *over = batch_of(101);
  request(&r, "POST", "/emails/batch", over, auth);
  expect_error(&r, 422, "validation_error", "Too many emails in the batch. The maximum is 100.");
  resp_free(&r);
  free(over);
  request(&r, "POST", "/emails/batch", "[]", auth);
  expect_error(&r, 422, "validation_error", "The batch must contain at least one email.");
  resp_free(&r);
  request(&r, "POST", "/emails/batch", VALID, auth);
  expect_error(&r, 422, "validation_error", "The request body must be an `array` of emails.");
  resp_free(&r);
  request(&r, "POST", "/emails/batch",
          "[{\"from\":\"" FROM "\",\"to\":\"a@x.co\",\"subject\":\"s\",\"text\":\"t\","
          "\"attachments\":[{\"path\":\"https://example.com/a.pdf\"}]}]",
          auth);
  expect_error(&r, 422, "validation_error",
               "The `attachments` field is not supported for batch emails.");
  resp_free(&r);
  const char *lenient[] = {AUTH, "x-batch-validation: lenient", NULL};
  request(&r, "POST", "/emails/batch", "[" VALID "]", lenient);
  expect_error(&r, 422, "validation_error",
               "Invalid `x-batch-validation` header. It must be `strict` or `permissive`.");
  resp_free(&r);
  assert_int_equal(emails_listed(), 2); /* nothing of the refused batches */
  char *hundred = batch_of(100);
  request(&r, "POST", "/emails/batch", hundred, strict);
  assert_int_equal(r.status, 200);
  assert_int_equal(json_array_size(json_object_get(r.json, "data")), 100);
  resp_free(&r);
  free(hundred);
  assert_int_equal(emails_listed(), 102);
  assert_int_equal(stat_of("batches"), 2);
}

static void test_batch_permissive(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  const char *permissive[] = {AUTH, "x-batch-validation: permissive", NULL};
  const char *mixed = "[" VALID ",{\"from\":\"acme\",\"to\":\"a@x.co\",\"subject\":\"s\","
                      "\"text\":\"t\"}," VALID ",{\"from\":\"" FROM "\",\"to\":\"a@x.co\","
                      "\"text\":\"t\"}]";
  resp r;
  request(&r, "POST", "/emails/batch", mixed, permissive);
  assert_int_equal(r.status, 200);
  json_t *data = json_object_get(r.json, "data"), *errors = json_object_get(r.json, "errors");
  assert_int_equal(json_array_size(data), 2);
  assert_int_equal(json_array_size(errors), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(errors, 0), "index")), 1);
  assert_string_equal(jstr(json_array_get(errors, 0), "message"),
                      "Invalid `from` field. " ADDRESS_FORMAT);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(errors, 1), "index")), 3);
  assert_string_equal(jstr(json_array_get(errors, 1), "message"), "Missing `subject` field.");
  json_t *list = control_get("/_mock/emails");
  assert_int_equal(json_array_size(list), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "batch_index")), 0);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "batch_index")), 2);
  assert_string_equal(jstr(json_array_get(list, 1), "id"), jstr(json_array_get(data, 1), "id"));
  json_decref(list);
  resp_free(&r);

  char *over = batch_of(101);
  request(&r, "POST", "/emails/batch", over, permissive);
  assert_int_equal(r.status, 200);
  assert_int_equal(json_array_size(json_object_get(r.json, "data")), 100);
  errors = json_object_get(r.json, "errors");
  assert_int_equal(json_array_size(errors), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(errors, 0), "index")), 100);
  assert_string_equal(jstr(json_array_get(errors, 0), "message"),
                      "The batch contains more than 100 emails.");
  resp_free(&r);
  free(over);
  request(&r, "POST", "/emails/batch", "[" VALID "]", permissive);
  assert_int_equal(r.status, 200);
  assert_true(json_is_array(json_object_get(r.json, "errors")));
  assert_int_equal(json_array_size(json_object_get(r.json, "errors")), 0);
  resp_free(&r);
  assert_int_equal(emails_listed(), 103);
}

static void test_idempotency(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  resp r;
  send_email(&r, VALID, "welcome-user/1");
  char *id = expect_id(&r);
  resp_free(&r);
  send_email(&r, VALID, "welcome-user/1");
  char *again = expect_id(&r);
  assert_string_equal(again, id);
  free(again);
  resp_free(&r);
  /* The same payload written otherwise is the same payload. */
  send_email(&r, "{ \"html\": \"<p>Hi</p>\", \"subject\": \"Welcome\", \"to\": \"ada@example.com\","
                 " \"from\": \"" FROM "\" }",
             "welcome-user/1");
  again = expect_id(&r);
  assert_string_equal(again, id);
  free(again);
  resp_free(&r);
  json_t *list = control_get("/_mock/emails");
  assert_int_equal(json_array_size(list), 1);
  assert_string_equal(jstr(json_array_get(list, 0), "idempotency_key"), "welcome-user/1");
  json_decref(list);
  assert_int_equal(stat_of("idempotent_replays"), 2);

  const char *invalid_request =
      "This idempotency key has been used with this HTTP method and endpoint within the last 24 "
      "hours, but the request body was modified and doesn't match the original request.";
  send_email(&r, "{\"from\":\"" FROM "\",\"to\":\"ada@example.com\",\"subject\":\"Other\","
                 "\"html\":\"<p>Hi</p>\"}",
             "welcome-user/1");
  expect_error(&r, 409, "invalid_idempotent_request", invalid_request);
  resp_free(&r);
  const char *batch_headers[] = {AUTH, "Idempotency-Key: welcome-user/1", NULL};
  request(&r, "POST", "/emails/batch", "[" VALID "]", batch_headers);
  expect_error(&r, 409, "invalid_idempotent_request", invalid_request);
  resp_free(&r);

  char long_key[300];
  memset(long_key, 'k', 256);
  long_key[256] = '\0';
  send_email(&r, VALID, long_key);
  free(expect_id(&r));
  resp_free(&r);
  long_key[256] = 'k';
  long_key[257] = '\0';
  send_email(&r, VALID, long_key);
  const char *bad_key = "Idempotency keys, if present, must have between 1 and 256 characters.";
  expect_error(&r, 400, "invalid_idempotency_key", bad_key);
  resp_free(&r);
  const char *empty_key[] = {AUTH, "Idempotency-Key;", NULL};
  request(&r, "POST", "/emails", VALID, empty_key);
  expect_error(&r, 400, "invalid_idempotency_key", bad_key);
  resp_free(&r);

  /* A refused request records nothing: its key is still free. */
  send_email(&r, "{\"from\":\"" FROM "\"}", "order/7");
  expect_error(&r, 422, "missing_required_field", "Missing `to` field.");
  resp_free(&r);
  send_email(&r, VALID, "order/7");
  free(expect_id(&r));
  resp_free(&r);
  /* Keys belong to one API key. */
  const char *other[] = {"Authorization: Bearer re_other_team", "Idempotency-Key: welcome-user/1",
                         NULL};
  request(&r, "POST", "/emails", VALID, other);
  char *other_id = expect_id(&r);
  assert_string_not_equal(other_id, id);
  free(other_id);
  resp_free(&r);
  /* The batch as a whole. */
  const char *batch_key[] = {AUTH, "Idempotency-Key: team-quota/9", NULL};
  char *two = batch_of(2);
  request(&r, "POST", "/emails/batch", two, batch_key);
  assert_int_equal(r.status, 200);
  char *first = json_dumps(r.json, JSON_COMPACT);
  resp_free(&r);
  request(&r, "POST", "/emails/batch", two, batch_key);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, first);
  resp_free(&r);
  const char *batch_key_permissive[] = {AUTH, "Idempotency-Key: team-quota/9",
                                        "x-batch-validation: permissive", NULL};
  request(&r, "POST", "/emails/batch", two, batch_key_permissive);
  expect_error(&r, 409, "invalid_idempotent_request", invalid_request);
  resp_free(&r);
  free(first);
  free(two);
  assert_int_equal(emails_listed(), 6);
  free(id);
}

static void test_idempotency_ttl(void **state) {
  (void)state;
  mock_start("--rps", "0", "--idempotency-ttl-ms", "500", NULL);
  const char *other = "{\"from\":\"" FROM "\",\"to\":\"ada@example.com\",\"subject\":\"Other\","
                      "\"text\":\"t\"}";
  resp r;
  send_email(&r, VALID, "k");
  char *id = expect_id(&r);
  resp_free(&r);
  send_email(&r, other, "k");
  assert_int_equal(r.status, 409);
  resp_free(&r);
  sleep_ms(600);
  send_email(&r, other, "k");
  char *id2 = expect_id(&r);
  assert_string_not_equal(id, id2);
  resp_free(&r);
  assert_int_equal(emails_listed(), 2);
  free(id);
  free(id2);
}

/* Runs the multi handle until done() holds, failing after ms. */
static void multi_until(CURLM *multi, int (*done)(void *), void *arg, int ms) {
  int64_t deadline = now_ms() + ms;
  while (!done(arg)) {
    int running;
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 10, NULL);
    if (now_ms() > deadline)
      fail_msg("timed out after %d ms", ms);
  }
}

static int server_holds_one(void *arg) {
  (void)arg;
  return stat_of("in_flight") == 1;
}

/* Collects finished transfers of multi into their resp (CURLOPT_PRIVATE). */
static int reap(CURLM *multi) {
  int done = 0, left;
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *c = msg->easy_handle;
    CURLcode rc = msg->data.result;
    resp *r;
    curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&r);
    curl_multi_remove_handle(multi, c);
    easy_done(c, r, rc);
    done++;
  }
  return done;
}

typedef struct {
  CURLM *multi;
  resp *r;
} waiting;

static int finished(void *arg) {
  waiting *w = arg;
  reap(w->multi);
  return w->r->status != 0 || w->r->rc != CURLE_OK;
}

static void test_idempotency_concurrent(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  set_faults("{\"faults\":[{\"path\":\"/emails\",\"delay_ms\":700}]}");
  const char *headers[] = {AUTH, "Idempotency-Key: welcome-user/42", NULL};
  CURLM *multi = curl_multi_init();
  resp a, b;
  CURL *ca = easy_new(&a, "POST", "/emails", VALID, 0, headers);
  curl_easy_setopt(ca, CURLOPT_PRIVATE, (char *)&a);
  curl_multi_add_handle(multi, ca);
  multi_until(multi, server_holds_one, NULL, 5000);
  /* The first request is processed and held: its email is stored, its key in progress. */
  assert_int_equal(emails_listed(), 1);
  CURL *cb = easy_new(&b, "POST", "/emails", VALID, 0, headers);
  curl_easy_setopt(cb, CURLOPT_PRIVATE, (char *)&b);
  curl_multi_add_handle(multi, cb);
  waiting wb = {multi, &b};
  multi_until(multi, finished, &wb, 5000);
  expect_error(&b, 409, "concurrent_idempotent_requests",
               "There is another request in progress with the same idempotency key.");
  assert_int_equal(a.status, 0); /* still held */
  waiting wa = {multi, &a};
  multi_until(multi, finished, &wa, 5000);
  char *id = expect_id(&a);
  assert_true(a.seconds >= 0.65);
  curl_multi_cleanup(multi);
  resp_free(&b);
  resp_free(&a);
  /* Once the first is done, the same request gets its response. */
  resp c;
  request(&c, "POST", "/emails", VALID, headers);
  char *again = expect_id(&c);
  assert_string_equal(again, id);
  assert_true(c.seconds < 0.5);
  resp_free(&c);
  assert_int_equal(emails_listed(), 1);
  assert_int_equal(stat_of("max_concurrent"), 2);
  free(id);
  free(again);
}

static void test_rate_limit(void **state) {
  (void)state;
  mock_start("--rps", "2", NULL);
  resp r;
  send_email(&r, VALID, NULL);
  free(expect_id(&r));
  assert_string_equal(header(&r, "ratelimit-limit"), "2");
  assert_string_equal(header(&r, "ratelimit-remaining"), "1");
  assert_string_equal(header(&r, "ratelimit-reset"), "1");
  assert_null(header(&r, "retry-after"));
  resp_free(&r);
  send_email(&r, VALID, NULL);
  free(expect_id(&r));
  assert_string_equal(header(&r, "ratelimit-remaining"), "0");
  resp_free(&r);
  send_email(&r, VALID, "after-the-limit");
  expect_error(&r, 429, "rate_limit_exceeded",
               "Too many requests. Please limit the number of requests per second. Or contact "
               "support to increase rate limit.");
  assert_string_equal(header(&r, "retry-after"), "1");
  assert_string_equal(header(&r, "ratelimit-limit"), "2");
  assert_string_equal(header(&r, "ratelimit-remaining"), "0");
  assert_string_equal(header(&r, "ratelimit-reset"), "1");
  resp_free(&r);
  /* Another API key has its own window; the control API has none. */
  const char *other[] = {"Authorization: Bearer re_other_team", NULL};
  request(&r, "POST", "/emails", VALID, other);
  free(expect_id(&r));
  assert_string_equal(header(&r, "ratelimit-remaining"), "1");
  resp_free(&r);
  assert_int_equal(emails_listed(), 3);
  assert_int_equal(stat_of("rate_limited"), 1);
  assert_int_equal(status_count(429), 1);
  sleep_ms(1100);
  /* The limited request stored nothing, not even its key. */
  send_email(&r, "{\"from\":\"" FROM "\",\"to\":\"x@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
             "after-the-limit");
  free(expect_id(&r));
  assert_string_equal(header(&r, "ratelimit-remaining"), "1");
  resp_free(&r);
  assert_int_equal(emails_listed(), 4);
}

static void test_fault_status(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  set_faults("{\"faults\":["
             "{\"path\":\"/emails\",\"status\":500,\"count\":2},"
             "{\"path\":\"/emails/batch\",\"status\":503,\"headers\":{\"retry-after\":\"10\"},"
             "\"body\":{\"x\":1}},"
             "{\"path\":\"/emails\",\"method\":\"POST\",\"status\":502,"
             "\"body\":\"<html>bad gateway</html>\"}]}");
  resp r;
  for (int i = 0; i < 2; i++) {
    send_email(&r, VALID, "k1");
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"statusCode\":500,\"message\":\"An unexpected error occurred.\","
                                "\"name\":\"application_error\"}");
    resp_free(&r);
  }
  /* Before authentication: a request without a key gets the fault too. */
  request(&r, "POST", "/emails", VALID, NULL);
  assert_int_equal(r.status, 502);
  assert_string_equal(r.body, "<html>bad gateway</html>");
  assert_non_null(strstr(header(&r, "content-type"), "text/plain"));
  resp_free(&r);
  send_email(&r, VALID, "k1"); /* the script is used up for /emails; the key was never stored */
  free(expect_id(&r));
  resp_free(&r);
  const char *auth[] = {AUTH, NULL};
  request(&r, "POST", "/emails/batch", "[" VALID "]", auth);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "{\"x\":1}");
  assert_string_equal(header(&r, "retry-after"), "10");
  resp_free(&r);
  request(&r, "POST", "/emails/batch", "[" VALID "]", auth);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  assert_int_equal(emails_listed(), 2);
  assert_int_equal(stat_of("faults_applied"), 4);
  json_t *left = control_get("/_mock/faults");
  assert_int_equal(json_array_size(json_object_get(left, "faults")), 0);
  json_decref(left);
}

static void test_fault_delay(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  set_faults("{\"faults\":[{\"path\":\"/emails\",\"delay_ms\":300},"
             "{\"path\":\"/emails\",\"status\":500,\"delay_ms\":200}]}");
  resp r;
  send_email(&r, VALID, NULL);
  free(expect_id(&r));
  assert_true(r.seconds >= 0.28);
  resp_free(&r);
  send_email(&r, VALID, NULL);
  assert_int_equal(r.status, 500);
  assert_true(r.seconds >= 0.18);
  resp_free(&r);
  send_email(&r, VALID, NULL);
  free(expect_id(&r));
  assert_true(r.seconds < 0.25); /* no second delay */
  resp_free(&r);
  assert_int_equal(emails_listed(), 2);
}

static void test_fault_drop_before(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  set_faults("{\"faults\":[{\"drop\":\"before\"}]}");
  resp r;
  send_email(&r, VALID, "k");
  assert_int_equal(r.rc, CURLE_GOT_NOTHING);
  resp_free(&r);
  assert_int_equal(emails_listed(), 0);
  assert_int_equal(stat_of("dropped"), 1);
  send_email(&r, VALID, "k");
  free(expect_id(&r));
  resp_free(&r);
  assert_int_equal(emails_listed(), 1);
}

static void test_fault_drop_after_accept(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  set_faults("{\"faults\":[{\"path\":\"/emails\",\"drop\":\"after_accept\"}]}");
  resp r;
  send_email(&r, VALID, "welcome-user/7");
  assert_int_equal(r.rc, CURLE_GOT_NOTHING);
  resp_free(&r);
  json_t *list = control_get("/_mock/emails");
  assert_int_equal(json_array_size(list), 1);
  char *stored = strdup(jstr(json_array_get(list, 0), "id"));
  json_decref(list);
  /* The client retries with the same key and gets the original response. */
  send_email(&r, VALID, "welcome-user/7");
  char *id = expect_id(&r);
  assert_string_equal(id, stored);
  resp_free(&r);
  assert_int_equal(emails_listed(), 1);
  assert_int_equal(stat_of("idempotent_replays"), 1);
  assert_int_equal(stat_of("dropped"), 1);
  free(id);
  free(stored);
}

static void test_faults_file(void **state) {
  (void)state;
  char path[300];
  snprintf(path, sizeof path, "%s/faults.json", tmp_dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("{\"faults\":[{\"path\":\"/emails\",\"status\":429,\"headers\":{\"retry-after\":\"3\"}}]}",
        f);
  fclose(f);
  mock_start("--rps", "0", "--faults", path, NULL);
  resp r;
  send_email(&r, VALID, NULL);
  expect_error(&r, 429, "rate_limit_exceeded",
               "Too many requests. Please limit the number of requests per second. Or contact "
               "support to increase rate limit.");
  assert_string_equal(header(&r, "retry-after"), "3");
  resp_free(&r);
  send_email(&r, VALID, NULL);
  free(expect_id(&r));
  resp_free(&r);
}

static void test_fault_script_errors(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  static const struct {
    const char *script, *why;
  } cases[] = {
      {"not json", "not JSON"},
      {"[]", "a fault script is an object"},
      {"{\"faults\":[{\"status\":500,\"colour\":\"red\"}]}", "unknown field \"colour\""},
      {"{\"faults\":[{\"drop\":\"sideways\"}]}", "faults[0].drop"},
      {"{\"faults\":[{\"path\":\"/emails\"}]}", "one of status, delay_ms, drop"},
      {"{\"faults\":[{\"status\":700}]}", "faults[0].status"},
      {"{\"faults\":[{\"status\":500,\"drop\":\"before\"}]}", "not both"},
      {"{\"faults\":[{\"delay_ms\":10,\"body\":{}}]}", "only with a status"},
      {"{\"faults\":[{\"status\":500,\"count\":0}]}", "faults[0].count"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    resp r;
    request(&r, "POST", "/_mock/faults", cases[i].script, NULL);
    assert_int_equal(r.status, 400);
    if (strstr(jstr(r.json, "error"), cases[i].why) == NULL)
      fail_msg("script %s: error '%s' does not say '%s'", cases[i].script, r.body, cases[i].why);
    resp_free(&r);
  }
  set_faults("{\"faults\":[{\"status\":500}]}");
  json_t *now = control_get("/_mock/faults");
  json_t *expected = json_loads("{\"faults\":[{\"path\":\"*\",\"count\":1,\"status\":500}]}", 0,
                                NULL);
  assert_true(json_equal(now, expected));
  json_decref(now);
  json_decref(expected);
}

static void test_reset(void **state) {
  (void)state;
  mock_start("--rps", "1", NULL);
  resp r;
  send_email(&r, VALID, "k");
  free(expect_id(&r));
  resp_free(&r);
  set_faults("{\"faults\":[{\"status\":500,\"count\":5}]}");
  request(&r, "POST", "/_mock/reset", NULL, NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  assert_int_equal(emails_listed(), 0);
  assert_int_equal(stat_of("requests"), 0);
  assert_int_equal(stat_of("accepted_emails"), 0);
  json_t *s = control_get("/_mock/stats");
  assert_int_equal(json_object_size(json_object_get(s, "by_status")), 0);
  json_decref(s);
  json_t *f = control_get("/_mock/faults");
  assert_int_equal(json_array_size(json_object_get(f, "faults")), 0);
  json_decref(f);
  /* The key, the fault script and the rate-limit window are forgotten. */
  send_email(&r, "{\"from\":\"" FROM "\",\"to\":\"x@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
             "k");
  free(expect_id(&r));
  assert_string_equal(header(&r, "ratelimit-remaining"), "0");
  resp_free(&r);
  assert_int_equal(emails_listed(), 1);
}

/* The log line of each request, parsed; *n lines. */
static json_t *read_log(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  json_t *lines = json_array();
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    json_t *j = json_loads(line, 0, NULL);
    if (j == NULL)
      fail_msg("log line is not JSON: %s", line);
    json_array_append_new(lines, j);
  }
  free(line);
  fclose(f);
  return lines;
}

static int has_header(const json_t *line, const char *name, const char *value) {
  size_t i;
  json_t *pair;
  json_array_foreach(json_object_get(line, "headers"), i, pair) {
    if (strcmp(json_string_value(json_array_get(pair, 0)), name) == 0 &&
        strcmp(json_string_value(json_array_get(pair, 1)), value) == 0)
      return 1;
  }
  return 0;
}

static void test_log(void **state) {
  (void)state;
  char path[300];
  snprintf(path, sizeof path, "%s/requests.jsonl", tmp_dir);
  unlink(path);
  mock_start("--rps", "0", "--log", path, NULL);
  const char *exact = "{\"from\": \"" FROM "\",  \"to\":\"ada@example.com\",\n"
                      "\"subject\":\"Welcome\",\"text\":\"caf\xc3\xa9\"}";
  const char *headers[] = {AUTH, "Idempotency-Key: welcome-user/3", "X-Trace: one", NULL};
  resp r;
  request(&r, "POST", "/emails?source=test", exact, headers);
  free(expect_id(&r));
  resp_free(&r);
  set_faults("{\"faults\":[{\"drop\":\"before\"}]}");
  send_email(&r, VALID, NULL);
  assert_int_equal(r.rc, CURLE_GOT_NOTHING);
  resp_free(&r);
  send_email(&r, "\xff\xfe", NULL);
  assert_int_equal(r.status, 400);
  resp_free(&r);
  json_t *lines = read_log(path);
  assert_int_equal(json_array_size(lines), 3); /* the control API is not logged */
  json_t *first = json_array_get(lines, 0);
  assert_string_equal(jstr(first, "method"), "POST");
  assert_string_equal(jstr(first, "path"), "/emails?source=test");
  assert_string_equal(jstr(first, "body"), exact);
  assert_true(has_header(first, "Idempotency-Key", "welcome-user/3"));
  assert_true(has_header(first, "X-Trace", "one"));
  assert_true(has_header(first, "Authorization", "Bearer " KEY));
  assert_true(has_header(first, "Content-Type", "application/json"));
  assert_int_equal(json_integer_value(json_object_get(first, "status")), 200);
  assert_string_equal(jstr(first, "outcome"), "replied");
  assert_true(json_is_null(json_object_get(first, "fault")));
  assert_true(json_integer_value(json_object_get(first, "time_ms")) > 1600000000000);
  json_t *second = json_array_get(lines, 1);
  assert_true(json_is_null(json_object_get(second, "status")));
  assert_string_equal(jstr(second, "outcome"), "dropped");
  assert_string_equal(jstr(second, "fault"), "drop_before");
  json_t *third = json_array_get(lines, 2);
  assert_null(json_object_get(third, "body"));
  assert_string_equal(jstr(third, "body_base64"), "//4=");
  assert_int_equal(json_integer_value(json_object_get(third, "status")), 400);
  json_decref(lines);
}

static void test_keep_alive(void **state) {
  (void)state;
  mock_start("--rps", "0", NULL);
  CURL *c = curl_easy_init();
  assert_non_null(c);
  char url[100];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/emails", mock_port);
  struct curl_slist *h = curl_slist_append(NULL, AUTH);
  h = curl_slist_append(h, JSON);
  resp r;
  memset(&r, 0, sizeof r);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "skene-test/1.0");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, VALID);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long status, connects;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(status, 200);
    assert_int_equal(connects, i == 0 ? 1 : 0); /* one connection, kept alive */
  }
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  resp_free(&r);
  assert_int_equal(emails_listed(), 3);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_resend_mock PATH/TO/resend-mock\n");
    return 2;
  }
  mock_path = argv[1];
  const char *tmp = getenv("TMPDIR");
  snprintf(tmp_dir, sizeof tmp_dir, "%s/resend-mock-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(tmp_dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_line),
      cmocka_unit_test_teardown(test_stops_on_sigint, teardown),
      cmocka_unit_test_teardown(test_auth, teardown),
      cmocka_unit_test_teardown(test_validation, teardown),
      cmocka_unit_test_teardown(test_size_limit, teardown),
      cmocka_unit_test_teardown(test_plain_and_template_emails, teardown),
      cmocka_unit_test_teardown(test_routes, teardown),
      cmocka_unit_test_teardown(test_batch_strict, teardown),
      cmocka_unit_test_teardown(test_batch_permissive, teardown),
      cmocka_unit_test_teardown(test_idempotency, teardown),
      cmocka_unit_test_teardown(test_idempotency_ttl, teardown),
      cmocka_unit_test_teardown(test_idempotency_concurrent, teardown),
      cmocka_unit_test_teardown(test_rate_limit, teardown),
      cmocka_unit_test_teardown(test_fault_status, teardown),
      cmocka_unit_test_teardown(test_fault_delay, teardown),
      cmocka_unit_test_teardown(test_fault_drop_before, teardown),
      cmocka_unit_test_teardown(test_fault_drop_after_accept, teardown),
      cmocka_unit_test_teardown(test_faults_file, teardown),
      cmocka_unit_test_teardown(test_fault_script_errors, teardown),
      cmocka_unit_test_teardown(test_reset, teardown),
      cmocka_unit_test_teardown(test_log, teardown),
      cmocka_unit_test_teardown(test_keep_alive, teardown),
  };
  int failed = cmocka_run_group_tests_name("resend_mock", tests, NULL, NULL);
  curl_global_cleanup();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp_dir);
  return failed;
}
