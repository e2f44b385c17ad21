/* Fuzz target: listen-address parsing (metrics_listen, https_listen) must
 * never crash, and what it accepts must print back to the same address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hostport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256)
		return 0;
	char spec[257];
	memcpy(spec, data, size);
	spec[size] = '\0';
	if (strlen(spec) != size)
		return 0; /* embedded NUL: a C string stops there anyway */
	struct sockaddr_storage ss;
	if (wi_hostport_parse(spec, &ss) < 0)
		return 0;
	char host[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 16];
	unsigned port;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		if (!inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)))
			abort();
		port = ntohs(a->sin_port);
		snprintf(again, sizeof(again), "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		if (!inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)))
			abort();
		port = ntohs(a->sin6_port);
		snprintf(again, sizeof(again), "[%s]:%u", host, port);
	} else {
		abort();
	}
	if (port == 0)
		abort();
	struct sockaddr_storage ss2;
	if (wi_hostport_parse(again, &ss2) < 0 || memcmp(&ss, &ss2, sizeof(ss)) != 0)
		abort();
	return 0;
}
