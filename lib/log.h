/* log.h: logging to stderr in the OpenBSD style. */
#ifndef PORCH_LOG_H
#define PORCH_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Verbosity: 0 info and warnings, 1 adds debug. */
void	log_init(const char *progname, int verbose);
void	log_setverbose(int);
int	log_getverbose(void);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * A line that an attacker or a broken peer can repeat at will (accept
 * errors, refused handshakes, refusals per source) goes through a rate
 * limit: one static struct per call site, zeroed, so each cause has its
 * own.  The first line goes out at once, then at most one per interval;
 * the lines held back meanwhile are counted and the next line that goes
 * out says how many.  interval_ms 0 means LOG_RATELIMIT_MS.
 */
#define LOG_RATELIMIT_MS	10000
struct log_ratelimit {
	unsigned	 interval_ms;
	int		 started;
	uint64_t	 last_ms;	/* when the last line went out */
	unsigned	 held;		/* lines held back since */
};
/* A warning (as log_warnx) under rl's limit; 1 if it went out, else 0. */
int	log_ratelimit(struct log_ratelimit *rl, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * Copy untrusted bytes into dst as printable ASCII, escaping everything
 * else (and the backslash, so an escape cannot be faked) as \xNN, so
 * peer-supplied strings cannot forge log lines or reach a terminal as
 * control bytes.  The one sanitizer for logs, messages and status text.
 * Cuts at a whole character when dst is full; always NUL-terminates;
 * returns dst.
 */
char	*log_escape(char *dst, size_t dstlen, const void *src, size_t srclen);

#endif
