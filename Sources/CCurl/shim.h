#include <curl/curl.h>
// curl_easy_setopt is variadic, which Swift cannot call: typed wrappers.
static inline CURLcode ipsight_curl_set_long(CURL *c, CURLoption o, long v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode ipsight_curl_set_string(CURL *c, CURLoption o, const char *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode ipsight_curl_set_pointer(CURL *c, CURLoption o, void *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode ipsight_curl_get_long(CURL *c, CURLINFO i, long *v) { return curl_easy_getinfo(c, i, v); }
// CURLMsg's result sits in an anonymous union.
static inline CURLcode ipsight_curl_msg_result(const CURLMsg *m) { return m->data.result; }
