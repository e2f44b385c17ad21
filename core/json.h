/* core/json.h — strict parsing of untrusted JSON objects (JOSE headers and
 * claims, JWK Sets, admin API bodies), and serialisation without stray
 * copies for texts that carry secrets.
 *
 * jansson alone accepts duplicate member names (the last one wins) and nests
 * up to 2048 levels.  RFC 7515 §4 and RFC 7519 §4 let a parser either refuse
 * duplicate names or take the last one; we refuse (two parsers taking
 * different duplicates is a classic bypass), and DESIGN §6 wants every
 * client-controlled size bounded, so this wrapper adds both checks. */
#ifndef WI_CORE_JSON_H
#define WI_CORE_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "core/error.h"

/* Parses s[0..len) as one JSON object: valid UTF-8, no duplicate member
 * names, nested at most WI_JSON_DEPTH_MAX levels (checked on the text before
 * jansson builds anything), nothing after the value.  `what` names the input
 * in the error detail ("JWS header").  WI_E_PARSE when malformed or not an
 * object, WI_E_TOO_BIG when nested too deep.  *ret is a new reference. */
int wi_json_parse_object(const char *s, size_t len, const char *what, json_t **ret) WI_WUR;
/* The same checks, for a document that is an object or an array (the admin
 * API's entry import takes either). */
int wi_json_parse_document(const char *s, size_t len, const char *what, json_t **ret) WI_WUR;

/* Serialises `j` into buf[0..cap) when it fits, else into a malloc'd
 * *ret_heap (the caller frees it); *ret_text and *ret_len say which holds the
 * text (not NUL-terminated).  With flags JSON_COMPACT the text is jansson's
 * byte for byte but most values are printed by cJSON, an order of magnitude
 * faster on long strings (json.c says which); with other flags jansson dumps,
 * in one pass when it fits and two when not. */
int wi_json_dump_into(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_heap, const char **ret_text,
		      size_t *ret_len) WI_WUR;
/* Serialises `j` into a new NUL-terminated string of exactly its size
 * (*ret_len bytes before the NUL).  Unlike json_dumps, which grows a buffer by
 * reallocation and frees it after copying, no copy of the text is left in
 * freed or stack memory: use it for bodies that carry a token. */
int wi_json_dump_alloc(const json_t *j, size_t flags, char **ret, size_t *ret_len) WI_WUR;

/* A string value for a secret this process made (an issued token: printable
 * ASCII), so it can go into a body that wi_json_dump_alloc serialises.  The
 * bytes are checked to be printable ASCII (hence UTF-8 without NUL) in one
 * pass, which spares jansson's per-character UTF-8 scan of a kilobyte-long
 * token; NULL when they are not, or out of memory.  Release it with
 * wi_json_secret_release, not json_decref. */
json_t *wi_json_secret_string(const char *s, size_t len);
/* Drops the caller's reference to a wi_json_secret_string value, wiping its
 * text first when that was the last reference (jansson frees it unwiped).
 * Hold your own reference while the value sits in a body ("O" in json_pack,
 * json_object_set) and release it after the body is gone.  Accepts NULL. */
void wi_json_secret_release(json_t *s);

#endif
