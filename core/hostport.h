/* core/hostport.h — strict parsing of a numeric listen address.
 *
 * Accepted: "A.B.C.D:PORT" (dotted-quad IPv4) and "[IPV6]:PORT" (brackets
 * required).  PORT is 1..65535, decimal digits only (no sign, no spaces, at
 * most 5 digits).  Host names are refused: the daemon never resolves names
 * (a resolver would block the loop and make the bound address depend on
 * DNS). */
#ifndef WI_CORE_HOSTPORT_H
#define WI_CORE_HOSTPORT_H

#include <sys/socket.h>

#include "core/error.h"

/* Fills *ret (AF_INET or AF_INET6, port in network order) on success;
 * WI_E_CONFIG with a detail naming the problem otherwise (*ret untouched). */
int wi_hostport_parse(const char *spec, struct sockaddr_storage *ret) WI_WUR;

#endif
