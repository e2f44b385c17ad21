/* core/hostport.c — see hostport.h. */
#include "core/hostport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

static int parse_port(const char *spec, const char *p, uint16_t *ret)
{
	size_t n = strlen(p);
	WI_CHECK(n >= 1 && n <= 5, WI_E_CONFIG, "\"%s\": the port must be 1 to 65535", spec);
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		WI_CHECK(p[i] >= '0' && p[i] <= '9', WI_E_CONFIG, "\"%s\": the port must be decimal digits", spec);
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	WI_CHECK(v >= 1 && v <= 65535, WI_E_CONFIG, "\"%s\": the port must be 1 to 65535", spec);
	*ret = (uint16_t)v;
	return 0;
}

int wi_hostport_parse(const char *spec, struct sockaddr_storage *ret)
{
	WI_CHECK(spec && *spec, WI_E_CONFIG, "empty listen address");
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	size_t hlen;
	bool v6 = spec[0] == '[';
	if (v6) {
		const char *close_br = strchr(spec, ']');
		WI_CHECK(close_br && close_br[1] == ':', WI_E_CONFIG, "\"%s\": expected [IPV6]:PORT", spec);
		hlen = (size_t)(close_br - spec - 1);
		WI_CHECK(hlen > 0 && hlen < sizeof(host), WI_E_CONFIG, "\"%s\": bad IPv6 address", spec);
		memcpy(host, spec + 1, hlen);
		port = close_br + 2;
	} else {
		const char *colon = strchr(spec, ':');
		WI_CHECK(colon, WI_E_CONFIG, "\"%s\": expected ADDRESS:PORT", spec);
		hlen = (size_t)(colon - spec);
		/* A second colon means an unbracketed IPv6 address: ambiguous. */
		WI_CHECK(!strchr(colon + 1, ':'), WI_E_CONFIG, "\"%s\": put an IPv6 address in brackets", spec);
		WI_CHECK(hlen > 0 && hlen < sizeof(host), WI_E_CONFIG, "\"%s\": expected ADDRESS:PORT", spec);
		memcpy(host, spec, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	uint16_t pnum = 0;
	WI_TRY(parse_port(spec, port, &pnum));
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		WI_CHECK(!strchr(host, '%'), WI_E_CONFIG, "\"%s\": zone indexes are not supported", spec);
		WI_CHECK(inet_pton(AF_INET6, host, &a->sin6_addr) == 1, WI_E_CONFIG, "\"%s\": bad IPv6 address",
			 spec);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(pnum);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		/* inet_pton takes dotted-quad only (no "1", no octal, no hex). */
		WI_CHECK(inet_pton(AF_INET, host, &a->sin_addr) == 1, WI_E_CONFIG,
			 "\"%s\": the address must be a numeric IPv4 address or [IPv6]", spec);
		a->sin_family = AF_INET;
		a->sin_port = htons(pnum);
	}
	*ret = ss;
	return 0;
}
