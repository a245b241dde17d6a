/* log.h: logging to stderr in the OpenBSD style. */
#ifndef PORCH_LOG_H
#define PORCH_LOG_H

#include <stdarg.h>
#include <stddef.h>

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
 * Copy untrusted bytes into dst as printable ASCII, escaping everything
 * else as \xNN, so peer-supplied strings cannot forge log lines.  Always
 * NUL-terminates; returns dst.
 */
char	*log_escape(char *dst, size_t dstlen, const void *src, size_t srclen);

#endif
