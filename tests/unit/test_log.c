/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for lib/log.c: the shape of a line (time, program, level,
 * message, errno text), the cap on a long message, debug lines only
 * when verbose, log_escape, and the rate limit of repeating lines.  stderr is pointed at a temporary file
 * for each test and read back.
 */

#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

struct cap {
	char	 path[64];
	int	 saved;		/* the real stderr */
};

static int
cap_setup(void **state)
{
	struct cap	*c;
	int		 fd;

	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "/tmp/porch-test-log.XXXXXX");
	assert_true((fd = mkstemp(c->path)) != -1);
	fflush(stderr);
	assert_true((c->saved = dup(STDERR_FILENO)) != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	close(fd);
	log_init("test", 0);
	*state = c;
	return 0;
}

static int
cap_teardown(void **state)
{
	struct cap	*c = *state;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	unlink(c->path);
	free(c);
	return 0;
}

/* What was logged so far; the caller frees it. */
static char *
cap_read(struct cap *c, size_t *lenp)
{
	FILE	*f;
	char	*buf;
	long	 len;

	fflush(stderr);
	assert_non_null(f = fopen(c->path, "r"));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((len = ftell(f)) >= 0);
	rewind(f);
	assert_non_null(buf = malloc((size_t)len + 1));
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)len;
	return buf;
}

static void
assert_matches(const char *s, const char *pattern)
{
	regex_t	re;
	int	r;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	r = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	if (r != 0)
		fail_msg("'%s' does not match /%s/", s, pattern);
}

static void
test_log_line(void **state)
{
	char	*out;

	log_info("visitor %s stream=%u", "127.0.0.1:5000", 7u);
	log_warnx("plain %d", 42);
	out = cap_read(*state, NULL);
	assert_matches(out, "^[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3} "
	    "test\\[info\\] visitor 127\\.0\\.0\\.1:5000 stream=7\n"
	    "[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3} "
	    "test\\[warn\\] plain 42\n$");
	free(out);
}

static void
test_log_errno(void **state)
{
	char	*out;

	errno = ENOENT;
	log_warn("open %s", "/nowhere");
	assert_int_equal(errno, ENOENT);	/* callers may still test it */
	out = cap_read(*state, NULL);
	assert_matches(out, "test\\[warn\\] open /nowhere: "
	    "No such file or directory\n$");
	free(out);
}

static void
test_log_long_message(void **state)
{
	char	*big, *out, *msg;
	size_t	 len;

	assert_non_null(big = malloc(5001));
	memset(big, 'x', 5000);
	big[5000] = '\0';
	errno = EACCES;
	log_warn("%s", big);
	log_info("next");
	out = cap_read(*state, &len);
	/* The message is cut at 2047 bytes; the line still ends, with the
	 * errno text, and the next line is whole. */
	assert_non_null(msg = strstr(out, "] x"));
	msg += 2;
	assert_int_equal(strspn(msg, "x"), 2047);
	assert_true(strncmp(msg + 2047, ": Permission denied\n", 20) == 0);
	assert_matches(msg + 2047 + 20, "^[0-9:.]+ test\\[info\\] next\n$");
	free(out);
	free(big);
}

static void
test_log_debug_only_verbose(void **state)
{
	char	*out;

	log_debug("hidden");
	log_setverbose(1);
	log_debug("shown %d", 1);
	log_setverbose(0);
	out = cap_read(*state, NULL);
	assert_null(strstr(out, "hidden"));
	assert_matches(out, "^[0-9:.]+ test\\[debug\\] shown 1\n$");
	free(out);
}

static void
test_log_escape(void **state)
{
	char	buf[16];

	(void)state;
	/* Space through '~' are kept, the backslash is escaped. */
	assert_string_equal(log_escape(buf, sizeof(buf), "a b\\\x01", 5),
	    "a b\\x5c\\x01");
	assert_string_equal(log_escape(buf, sizeof(buf), " ~\x1f\x7f", 4),
	    " ~\\x1f\\x7f");
	/* A newline cannot start a forged line; high bytes are escaped. */
	assert_string_equal(log_escape(buf, sizeof(buf), "x\ny\r\xff", 5),
	    "x\\x0ay\\x0d\\xff");
	/* NULs are data, not the end: srclen counts. */
	assert_string_equal(log_escape(buf, sizeof(buf), "a\0b", 3),
	    "a\\x00b");
	/* Never a partial escape, always terminated. */
	assert_string_equal(log_escape(buf, 6, "\x7f\x7f", 2), "\\x7f");
	assert_string_equal(log_escape(buf, 4, "abcdef", 6), "abc");
	assert_string_equal(log_escape(buf, 1, "abc", 3), "");
	assert_ptr_equal(log_escape(buf, 0, "abc", 3), buf);
}

/* A burst is one line; after the interval, one line with the count. */
static void
test_log_ratelimit(void **state)
{
	static struct log_ratelimit	 rl = { .interval_ms = 100 };
	static struct log_ratelimit	 other = { .interval_ms = 100 };
	char				*out;
	int				 i, sent = 0;

	for (i = 0; i < 10000; i++)
		sent += log_ratelimit(&rl, "accept on %s: %s", "x",
		    "Too many open files");
	/* Another cause has its own limit. */
	sent += log_ratelimit(&other, "refused %d", 1);
	assert_int_equal(sent, 2);
	usleep(150 * 1000);
	assert_int_equal(log_ratelimit(&rl, "accept on %s: %s", "x", "EMFILE"),
	    1);
	assert_int_equal(log_ratelimit(&rl, "accept on %s: %s", "x", "EMFILE"),
	    0);
	out = cap_read(*state, NULL);
	assert_matches(out, "^[^\n]*test\\[warn\\] accept on x: Too many "
	    "open files\n"
	    "[^\n]*test\\[warn\\] refused 1\n"
	    "[^\n]*test\\[warn\\] accept on x: EMFILE \\(and 9999 more like "
	    "it in the last 0\\.[0-9]s\\)\n$");
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_line,
		    cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_log_errno,
		    cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_log_long_message,
		    cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_log_debug_only_verbose,
		    cap_setup, cap_teardown),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test_setup_teardown(test_log_ratelimit,
		    cap_setup, cap_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
