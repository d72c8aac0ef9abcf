/* http_method.h: the name of an evhttp request's method, for the test servers that log what they
 * are sent (tests/http/server.h, tests/resend/resend-mock.c, tests/conformance/sink.c). Include it
 * after event2/http.h. */
#ifndef SK_TESTS_HTTP_METHOD_H
#define SK_TESTS_HTTP_METHOD_H

static inline const char *method_name(enum evhttp_cmd_type c) {
  switch (c) {
  case EVHTTP_REQ_GET: return "GET";
  case EVHTTP_REQ_POST: return "POST";
  case EVHTTP_REQ_HEAD: return "HEAD";
  case EVHTTP_REQ_PUT: return "PUT";
  case EVHTTP_REQ_DELETE: return "DELETE";
  case EVHTTP_REQ_OPTIONS: return "OPTIONS";
  case EVHTTP_REQ_TRACE: return "TRACE";
  case EVHTTP_REQ_CONNECT: return "CONNECT";
  case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "?";
}

#endif
