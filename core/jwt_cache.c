/* core/jwt_cache.c — a hash table with an LRU list.
 *
 * The tokens are bearer credentials (STYLE §10): each copy held here is
 * wiped when it goes, and the copies handed out are the caller's to wipe. */
#include "core/jwt_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

typedef struct node {
	struct node *hnext;            /* hash chain */
	struct node *lru_prev, *lru_next; /* most recent first */
	uint64_t hash;
	time_t refresh_at;
	char *token;
	size_t token_len;
	char key[];
} node;

struct wi_jwt_cache {
	pthread_mutex_t lock;
	node **buckets;
	size_t n_buckets;
	size_t size, max;
	node *lru_head, *lru_tail;
	uint64_t hits, misses, evictions;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

int wi_jwt_cache_new(size_t max_entries, wi_jwt_cache **ret)
{
	WI_CHECK(max_entries > 0, WI_E_INVAL, "cache size 0");
	wi_jwt_cache *c = calloc(1, sizeof(*c));
	WI_CHECK_ALLOC(c);
	c->n_buckets = 1;
	while (c->n_buckets < max_entries)
		c->n_buckets <<= 1;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	c->max = max_entries;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

static void node_free(node *n)
{
	wi_secret_free(n->token, n->token_len);
	free(n);
}

static void lru_unlink(wi_jwt_cache *c, node *n)
{
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else
		c->lru_head = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		c->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
}

static void lru_push_front(wi_jwt_cache *c, node *n)
{
	n->lru_prev = NULL;
	n->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = n;
	c->lru_head = n;
	if (!c->lru_tail)
		c->lru_tail = n;
}

/* Removes n from its chain and the LRU list and frees it. */
static void remove_node(wi_jwt_cache *c, node *n)
{
	node **pp = &c->buckets[n->hash & (c->n_buckets - 1)];
	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	lru_unlink(c, n);
	node_free(n);
	c->size--;
}

static node *find(wi_jwt_cache *c, const char *key, uint64_t h)
{
	for (node *n = c->buckets[h & (c->n_buckets - 1)]; n; n = n->hnext)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

void wi_jwt_cache_clear(wi_jwt_cache *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->lru_head)
		remove_node(c, c->lru_head);
	pthread_mutex_unlock(&c->lock);
}

wi_jwt_cache *wi_jwt_cache_free(wi_jwt_cache *c)
{
	if (!c)
		return NULL;
	wi_jwt_cache_clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "<decimal length>:<bytes>" (a netstring without the comma), so that no
 * choice of kid, SPIFFE ID or audiences can collide with another. */
static int append_part(wi_buf *b, const char *s)
{
	size_t n = strlen(s);
	char num[24];
	size_t at = sizeof(num);
	num[--at] = ':';
	size_t v = n;
	do {
		num[--at] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	WI_TRY(wi_buf_append(b, num + at, sizeof(num) - at));
	return wi_buf_append(b, s, n);
}

int wi_jwt_cache_key(const char *kid, const char *spiffe_id, const char *const *aud, size_t n_aud, char **ret)
{
	WI_CHECK(n_aud <= WI_JWT_AUDIENCES_MAX, WI_E_INVAL, "too many audiences");
	const char *sorted[WI_JWT_AUDIENCES_MAX];
	memcpy(sorted, aud, n_aud * sizeof(*aud));
	qsort(sorted, n_aud, sizeof(*sorted), cmp_str);
	wi_buf b;
	wi_buf_init(&b, 64 * 1024, false);
	int rc = append_part(&b, kid);
	if (rc == 0)
		rc = append_part(&b, spiffe_id);
	for (size_t i = 0; i < n_aud && rc == 0; i++) {
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue; /* a set: duplicates do not change the token */
		rc = append_part(&b, sorted[i]);
	}
	if (rc == 0)
		rc = wi_buf_append(&b, "", 1);
	if (rc < 0) {
		wi_buf_free(&b);
		return rc;
	}
	size_t len;
	wi_buf_steal(&b, (uint8_t **)ret, &len);
	return 0;
}

int wi_jwt_cache_get(wi_jwt_cache *c, const char *key, time_t now, char **ret_token)
{
	uint64_t h = hash_str(key);
	char *copy = NULL;
	pthread_mutex_lock(&c->lock);
	node *n = find(c, key, h);
	if (n && now >= n->refresh_at) {
		remove_node(c, n);
		n = NULL;
	}
	if (n) {
		copy = malloc(n->token_len + 1);
		if (copy)
			memcpy(copy, n->token, n->token_len + 1);
		lru_unlink(c, n);
		lru_push_front(c, n);
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->lock);
	if (!n)
		return WI_E_NOT_FOUND;
	WI_CHECK_ALLOC(copy);
	*ret_token = copy;
	return 0;
}

int wi_jwt_cache_put(wi_jwt_cache *c, const char *key, const char *token, time_t refresh_at)
{
	size_t kl = strlen(key);
	node *n = calloc(1, sizeof(*n) + kl + 1);
	WI_CHECK_ALLOC(n);
	n->token_len = strlen(token);
	n->token = malloc(n->token_len + 1);
	if (!n->token) {
		free(n);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	memcpy(n->token, token, n->token_len + 1);
	memcpy(n->key, key, kl + 1);
	n->hash = hash_str(key);
	n->refresh_at = refresh_at;
	pthread_mutex_lock(&c->lock);
	node *old = find(c, key, n->hash);
	if (old)
		remove_node(c, old);
	while (c->size >= c->max && c->lru_tail) {
		remove_node(c, c->lru_tail);
		c->evictions++;
	}
	node **bucket = &c->buckets[n->hash & (c->n_buckets - 1)];
	n->hnext = *bucket;
	*bucket = n;
	lru_push_front(c, n);
	c->size++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void wi_jwt_cache_get_stats(wi_jwt_cache *c, wi_jwt_cache_stats *ret)
{
	pthread_mutex_lock(&c->lock);
	ret->hits = c->hits;
	ret->misses = c->misses;
	ret->evictions = c->evictions;
	ret->size = c->size;
	pthread_mutex_unlock(&c->lock);
}
