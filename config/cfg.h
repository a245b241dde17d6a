/* cfg.h: strict YAML configuration for porch-gateway and porch-agent. */
#ifndef PORCH_CFG_H
#define PORCH_CFG_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"

/* A numeric listen address, e.g. "0.0.0.0:443" or "[::]:443". */
struct cfg_listen {
	char			*text;		/* as written in the config */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
};

/* An agent admitted by a gateway, and the names it may claim. */
struct cfg_grant {
	char		*name;
	uint8_t		 key[KEY_PUB_LEN];
	char		**patterns;	/* normalized; "*.x" covers below x */
	size_t		 npatterns;
	unsigned	 min_priority;	/* claims below it are raised to it
					   (1..255, default 1: no bound) */
	int		 acme;		/* may take ACME probes (default 1) */
};

/* Another gateway of the cluster, linked by a mutually pinned tunnel. */
struct cfg_peer {
	char		*name;
	char		*address;	/* "host:port" of its tunnel listener */
	char		*host;
	unsigned	 port;
	uint8_t		 key[KEY_PUB_LEN];
	/* The names its announcements are believed for, as for agents.
	 * No 'hostnames' key (has_hostnames 0): believed for none. */
	char		**patterns;
	size_t		 npatterns;
	int		 has_hostnames;
};

struct cfg_gateway {
	char			*file;		/* config path, for messages */
	char			*identity;	/* key file, absolute or relative to cwd */
	char			*name;		/* own name: default the hostname
						   (NULL here, caller fills) */
	struct cfg_listen	*admin;		/* status/metrics, or NULL */
	int			 admin_public;	/* admin may be off loopback */
	struct cfg_listen	*tls;		/* TLS passthrough entries */
	size_t			 ntls;
	struct cfg_listen	*http;		/* plain HTTP entries */
	size_t			 nhttp;
	struct cfg_listen	*tunnel;	/* agent tunnel listeners */
	size_t			 ntunnel;
	unsigned		 hello_timeout_ms;	/* default 5000 */
	unsigned		 keepalive_ms;		/* default 1000 */
	unsigned		 dead_peer_ms;		/* default 4000 */
	unsigned		 handshake_timeout_ms;	/* default 10000 */
	size_t			 hello_max;		/* default 16384 */
	size_t			 http_head_max;		/* default 8192 */
	unsigned		 streams_per_tunnel;	/* default 4096 */
	size_t			 stream_window;		/* default 1 MiB */
	unsigned		 max_connections;	/* default 20000 */
	unsigned		 names_per_peer;	/* default 100000 */
	unsigned		 drain_ms;		/* default 30000 */
	unsigned		 announce_ms;		/* default 2000 */
	unsigned		 retries;		/* default 2 (0..8) */
	size_t			 replay_max;		/* default 64 KiB */
	unsigned		 claims_per_tunnel;	/* default 16384 */
	unsigned		 connections_per_source; /* 0: a quarter of
							 * max_connections */
	unsigned		 handshakes_per_source;	/* default 16 */
	/* Where visitors reach this gateway (sent to agents for DNS);
	 * none: never published. */
	struct sockaddr_storage	*public_addrs;	/* port 0 */
	size_t			 npublic;
	struct cfg_grant	*agents;
	size_t			 nagents;
	struct cfg_peer		*peers;
	size_t			 npeers;
};

/* A gateway the agent keeps a tunnel to. */
struct cfg_remote {
	char		*name;
	char		*address;	/* "host:port" as written */
	char		*host;		/* split from address */
	unsigned	 port;
	uint8_t		 key[KEY_PUB_LEN];	/* pinned gateway key */
	char		*server_name;	/* SNI to send; NULL: host if a name */
};

enum cfg_proxy_proto {
	CFG_PROXY_OFF = 0,
	CFG_PROXY_V1,
	CFG_PROXY_V2,
};

enum cfg_policy {
	CFG_POLICY_FAILOVER = 0,	/* lowest priority value wins */
	CFG_POLICY_BALANCE,		/* fewest active streams */
};

enum cfg_check {
	CFG_CHECK_NONE = 0,	/* no health section: always up */
	CFG_CHECK_TCP,		/* connect to every configured backend */
	CFG_CHECK_TLS,		/* TLS handshake with the tls backend */
	CFG_CHECK_HTTP,		/* GET path from the http backend */
};

struct cfg_health {
	enum cfg_check	 check;
	unsigned	 interval_ms;	/* default 2000 */
	unsigned	 timeout_ms;	/* default 1000, < interval */
	unsigned	 rise;		/* successes to come up, default 2 */
	unsigned	 fall;		/* failures to go down, default 2 */
	char		*path;		/* http: default "/" */
	unsigned	 expect;	/* http: status, default 200 */
};

/* ACME challenge types, in the order the agent prefers them. */
enum cfg_challenge {
	CFG_CHALLENGE_HTTP01 = 0,	/* gateway's HTTP entry (port 80) */
	CFG_CHALLENGE_TLSALPN01,	/* gateway's TLS entry (port 443) */
	CFG_CHALLENGE_DNS01,		/* a TXT record, through dns: */
	CFG_CHALLENGE_MAX
};

enum cfg_key_type {		/* certificate keys (the account is P-256) */
	CFG_KEY_EC_P256 = 0,
	CFG_KEY_EC_P384,
	CFG_KEY_RSA_2048,
	CFG_KEY_RSA_3072,
};

/* Where and how the agent obtains certificates (the "acme:" section). */
struct cfg_acme {
	char		*directory;	/* https URL of the CA's directory */
	char		*ca_bundle;	/* trust for the CA's API, or NULL */
	char		*email;		/* contact, or NULL */
	char		*eab_kid;	/* external account binding, or NULL */
	char		*eab_hmac;	/* its base64url HMAC key */
	char		*state_dir;	/* absolute or relative to cwd */
	enum cfg_challenge challenges[CFG_CHALLENGE_MAX];
	size_t		 nchallenges;
	char		*renew_hook;	/* sh -c command, or NULL */
	int		 caa_pin;	/* CAA accounturi records (dns:) */
	char		*caa_identity;	/* the CA's CAA domain; NULL: its
					   directory's caaIdentities */
	enum cfg_key_type key_type;
	unsigned	 retry_min_ms;	/* backoff after a failure, 1m */
	unsigned	 retry_max_ms;	/* 24h */
};

/* A hostname the agent publishes, and where each entry kind goes. */
struct cfg_service {
	char			*hostname;	/* normalized, may be "*.x" */
	char			*tls_backend;	/* "host:port" or NULL */
	int			 tls_terminate;	/* tls: terminate (agent ends TLS) */
	char			*http_backend;	/* "host:port" or NULL */
	char			*h2c_backend;	/* terminate: h2 visitors, or NULL */
	int			 acme;		/* certificate: acme */
	char			**cert_names;	/* hostname first, then extras */
	size_t			 ncert_names;
	enum cfg_proxy_proto	 proxy_protocol;
	unsigned		 priority;	/* 1..255, default 100 */
	enum cfg_policy		 policy;
	struct cfg_health	 health;
	unsigned		 max_connections; /* to its backend, 1024 */
	int			 dns;		/* records kept (dns: section) */
};

enum cfg_dns_provider {
	CFG_DNS_RFC2136 = 1,	/* dynamic updates signed with TSIG */
	CFG_DNS_EXEC,		/* a command gets the record sets as JSON */
};

/* dns: keep each published hostname's A/AAAA at the live gateways. */
struct cfg_dns {
	enum cfg_dns_provider provider;
	char		*server;	/* rfc2136: "host:port" as written */
	char		*host;
	unsigned	 port;		/* default 53 */
	char		*zone;		/* normalized, no final dot */
	char		*tsig_key;	/* rfc2136: key file (tsig-keygen) */
	char		*command;	/* exec: sh -c command */
	unsigned	 ttl_ms;	/* default 60 s */
	unsigned	 grace_ms;	/* default 30000 */
	/* Where a dns-01 record must be seen before the CA is asked: the
	 * zone's name servers ("host:port"); none: those of its NS set. */
	char		**nameservers;
	size_t		 nnameservers;
};

struct cfg_agent {
	char			*file;
	char			*identity;
	char			*name;		/* for logs; default hostname */
	struct cfg_remote	*gateways;
	size_t			 ngateways;
	struct cfg_service	*services;
	size_t			 nservices;
	unsigned		 reconnect_min_ms;	/* default 500 */
	unsigned		 reconnect_max_ms;	/* default 30000 */
	unsigned		 keepalive_ms;		/* default 1000 */
	unsigned		 dead_peer_ms;		/* default 4000 */
	unsigned		 connect_timeout_ms;	/* default 5000 */
	unsigned		 drain_ms;		/* default 10000 */
	size_t			 stream_window;		/* default 1 MiB */
	unsigned		 max_streams;		/* agent-wide, 4096 */
	unsigned		 gateway_share;		/* % of max_streams one
							   gateway may use; 0:
							   100 with one gateway,
							   else 50 */
	struct cfg_listen	*admin;			/* status, or NULL */
	int			 admin_public;		/* admin off loopback */
	struct cfg_acme		*acme;			/* or NULL */
	struct cfg_dns		*dns;			/* or NULL */
};

/*
 * Load and fully validate a config file.  On error returns NULL and
 * writes "file:line:col: what: 'value' (hint)" into err.  The result is
 * immutable; free it with the matching _free.
 */
struct cfg_gateway	*cfg_gateway_load(const char *path, char *err, size_t);
void			 cfg_gateway_free(struct cfg_gateway *);
struct cfg_agent	*cfg_agent_load(const char *path, char *err, size_t);
void			 cfg_agent_free(struct cfg_agent *);

/* The same from a string already in memory (tests, fuzzing). */
struct cfg_gateway	*cfg_gateway_parse(const char *name, const char *text,
			    size_t len, char *err, size_t);
struct cfg_agent	*cfg_agent_parse(const char *name, const char *text,
			    size_t len, char *err, size_t);

#endif
