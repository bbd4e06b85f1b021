#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static char err[512];

static double duration(const char *s)
{
	double secs = -1;
	err[0] = '\0';
	assert_int_equal(parse_duration(s, &secs, err, sizeof(err)), 0);
	return secs;
}

static void assert_duration_rejected(const char *s)
{
	double secs = 12345;
	err[0] = '\0';
	assert_int_equal(parse_duration(s, &secs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected a duration"));
	assert_true(secs == 12345);
}

/* Durations */

static void duration_units(void **state)
{
	(void)state;
	assert_float_equal(duration("250ms"), 0.25, 1e-12);
	assert_float_equal(duration("30s"), 30, 1e-12);
	assert_float_equal(duration("5m"), 300, 1e-12);
	assert_float_equal(duration("1h"), 3600, 1e-12);
	assert_float_equal(duration("2d"), 172800, 1e-12);
	assert_float_equal(duration("5min"), 300, 1e-12);
	assert_float_equal(duration("7sec"), 7, 1e-12);
}

static void duration_fractions_and_compounds(void **state)
{
	(void)state;
	assert_float_equal(duration("1.5s"), 1.5, 1e-12);
	assert_float_equal(duration("1m30s"), 90, 1e-12);
	assert_float_equal(duration("1h2m3s"), 3723, 1e-12);
	assert_float_equal(duration("1s500ms"), 1.5, 1e-12);
	assert_float_equal(duration(".5s"), 0.5, 1e-12);
}

static void duration_bare_number_is_seconds(void **state)
{
	(void)state;
	assert_float_equal(duration("45"), 45, 1e-12);
	assert_float_equal(duration("0.25"), 0.25, 1e-12);
	assert_true(duration("0") == 0);
	assert_true(duration("0s") == 0);
}

static void duration_one_year_is_the_limit(void **state)
{
	(void)state;
	assert_true(duration("365d") == PARSE_DURATION_MAX);
	assert_duration_rejected("366d");
	assert_duration_rejected("8761h");
	assert_duration_rejected("99999999999999999999999999999999999999d");
	char huge[400];
	memset(huge, '9', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_duration_rejected(huge);
}

static void duration_malformed_rejected(void **state)
{
	(void)state;
	assert_duration_rejected("");
	assert_duration_rejected("s");
	assert_duration_rejected("ms");
	assert_duration_rejected("10x");
	assert_duration_rejected("-1s");
	assert_duration_rejected("+1s");
	assert_duration_rejected("1m30");
	assert_duration_rejected(" 5s");
	assert_duration_rejected("5s ");
	assert_duration_rejected("5 s");
	assert_duration_rejected(".s");
	assert_duration_rejected("1e3s");
	assert_duration_rejected("0x10s");
	assert_duration_rejected("1.5.5s");
}

static void duration_error_quotes_input(void **state)
{
	(void)state;
	double secs;
	assert_int_equal(parse_duration("10x", &secs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"10x\""));
	assert_non_null(strstr(err, "30s"));
}

static const char *formatted(double secs)
{
	static char out[64];
	format_duration(secs, out, sizeof(out));
	return out;
}

static void format_duration_normal_form(void **state)
{
	(void)state;
	assert_string_equal(formatted(0), "0s");
	assert_string_equal(formatted(0.25), "250ms");
	assert_string_equal(formatted(1.5), "1500ms");
	assert_string_equal(formatted(30), "30s");
	assert_string_equal(formatted(60), "1m");
	assert_string_equal(formatted(90), "1m30s");
	assert_string_equal(formatted(300), "5m");
	assert_string_equal(formatted(3600), "1h");
	assert_string_equal(formatted(86400), "24h");
}

static void assert_format_round_trips(const char *text)
{
	double secs = duration(text);
	char out[64];
	format_duration(secs, out, sizeof(out));
	double again = -1;
	assert_int_equal(parse_duration(out, &again, err, sizeof(err)), 0);
	if (again != secs)
		fail_msg("\"%s\" = %.17g formats as \"%s\" = %.17g", text, secs, out, again);
}

static void format_duration_round_trips(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"0", "1ms", "250ms", "999ms", "1s", "30s", "59s", "1m", "1m30s", "61m1s", "5m",
		"1h", "1h1s", "25h", "1.5s", "100ms", "365d",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		assert_format_round_trips(texts[i]);
}

static void format_duration_round_trips_decimal_seconds(void **state)
{
	(void)state;
	assert_format_round_trips("0.009s");
	assert_format_round_trips("0.013s");
	assert_format_round_trips("2.036s");
}

/* Sizes */

static uint64_t size_of(const char *s)
{
	uint64_t bytes = 12345;
	err[0] = '\0';
	assert_int_equal(parse_size(s, &bytes, err, sizeof(err)), 0);
	return bytes;
}

static void assert_size_rejected(const char *s)
{
	uint64_t bytes = 12345;
	err[0] = '\0';
	assert_int_equal(parse_size(s, &bytes, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected a size like"));
	assert_true(bytes == 12345);
}

static void size_units(void **state)
{
	(void)state;
	assert_true(size_of("512") == 512);
	assert_true(size_of("4096B") == 4096);
	assert_true(size_of("0") == 0);
	assert_true(size_of("0KiB") == 0);
	assert_true(size_of("64KiB") == 65536);
	assert_true(size_of("64K") == 65536);
	assert_true(size_of("10MiB") == 10485760);
	assert_true(size_of("10M") == 10485760);
	assert_true(size_of("1GiB") == 1073741824);
	assert_true(size_of("1G") == 1073741824);
	assert_true(size_of("2TiB") == 2ull << 40);
	assert_true(size_of("2T") == 2ull << 40);
	assert_true(size_of("007KiB") == 7168);
}

static void size_limit_is_uint64(void **state)
{
	(void)state;
	assert_true(size_of("18446744073709551615") == UINT64_MAX);
	assert_true(size_of("18446744073709551615B") == UINT64_MAX);
	assert_true(size_of("16777215TiB") == 16777215ull << 40);
	assert_size_rejected("18446744073709551616");
	assert_size_rejected("99999999999999999999999999");
	assert_size_rejected("16777216TiB");
	assert_size_rejected("18014398509481984KiB");
}

static void size_malformed_rejected(void **state)
{
	(void)state;
	assert_size_rejected("");
	assert_size_rejected("KiB");
	assert_size_rejected("-1");
	assert_size_rejected("-1KiB");
	assert_size_rejected("+1KiB");
	assert_size_rejected("1.5MiB");
	assert_size_rejected(".5M");
	assert_size_rejected(" 64KiB");
	assert_size_rejected("64KiB ");
	assert_size_rejected("64 KiB");
	assert_size_rejected("64KB");
	assert_size_rejected("64kB");
	assert_size_rejected("64MB");
	assert_size_rejected("64k");
	assert_size_rejected("64kib");
	assert_size_rejected("64Ki");
	assert_size_rejected("64KiBB");
	assert_size_rejected("1e3");
	assert_size_rejected("0x10");
	assert_size_rejected("1PiB");
}

static void size_error_quotes_input(void **state)
{
	(void)state;
	uint64_t bytes;
	assert_int_equal(parse_size("10MB", &bytes, err, sizeof(err)), -1);
	assert_string_equal(err, "expected a size like 512, 64KiB, 10MiB or 1GiB, got \"10MB\"");
}

static const char *size_text(uint64_t bytes)
{
	static char out[32];
	format_size(bytes, out, sizeof(out));
	return out;
}

static void format_size_shortest_exact(void **state)
{
	(void)state;
	assert_string_equal(size_text(0), "0");
	assert_string_equal(size_text(1), "1");
	assert_string_equal(size_text(1000), "1000");
	assert_string_equal(size_text(1023), "1023");
	assert_string_equal(size_text(1024), "1KiB");
	assert_string_equal(size_text(1536), "1536");
	assert_string_equal(size_text(65536), "64KiB");
	assert_string_equal(size_text(1024000), "1000KiB");
	assert_string_equal(size_text(10485760), "10MiB");
	assert_string_equal(size_text(1073741824), "1GiB");
	assert_string_equal(size_text(3ull << 39), "1536GiB");
	assert_string_equal(size_text(1ull << 40), "1TiB");
	assert_string_equal(size_text(1ull << 63), "8388608TiB");
	assert_string_equal(size_text(UINT64_MAX), "18446744073709551615");
}

static void format_size_round_trips(void **state)
{
	(void)state;
	static const uint64_t values[] = {
		0, 1, 512, 1023, 1024, 1025, 4096, 65536, 1536, 10485760, 1ull << 40,
		(1ull << 40) + 1024, 1ull << 63, UINT64_MAX, UINT64_MAX - 1023,
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const char *text = size_text(values[i]);
		if (size_of(text) != values[i])
			fail_msg("%llu formats as \"%s\"", (unsigned long long)values[i], text);
	}
}

/* Signals */

static int signal_of(const char *s)
{
	int signo = -1;
	assert_int_equal(parse_signal(s, &signo, err, sizeof(err)), 0);
	return signo;
}

static void assert_signal_rejected(const char *s)
{
	int signo = -1;
	err[0] = '\0';
	assert_int_equal(parse_signal(s, &signo, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected a signal"));
	assert_int_equal(signo, -1);
}

static void signal_by_name_prefix_case_and_number(void **state)
{
	(void)state;
	assert_int_equal(signal_of("TERM"), SIGTERM);
	assert_int_equal(signal_of("SIGTERM"), SIGTERM);
	assert_int_equal(signal_of("term"), SIGTERM);
	assert_int_equal(signal_of("sigterm"), SIGTERM);
	assert_int_equal(signal_of("15"), SIGTERM);
	assert_int_equal(signal_of("KILL"), SIGKILL);
	assert_int_equal(signal_of("HUP"), SIGHUP);
	assert_int_equal(signal_of("USR2"), SIGUSR2);
	assert_int_equal(signal_of("WINCH"), SIGWINCH);
	assert_int_equal(signal_of("9"), SIGKILL);
}

static void signal_invalid_rejected(void **state)
{
	(void)state;
	assert_signal_rejected("FOO");
	assert_signal_rejected("0");
	assert_signal_rejected("999");
	assert_signal_rejected("");
	assert_signal_rejected("SIG");
	assert_signal_rejected("-15");
	assert_signal_rejected("15x");
	assert_signal_rejected("TERM ");
}

static void signal_name_of_number(void **state)
{
	(void)state;
	assert_string_equal(signal_name(SIGTERM), "TERM");
	assert_string_equal(signal_name(SIGKILL), "KILL");
	assert_string_equal(signal_name(SIGHUP), "HUP");
	assert_null(signal_name(0));
	assert_null(signal_name(999));
}

/* Integers and modes */

static void uint_range(void **state)
{
	(void)state;
	unsigned long n = 0;
	assert_int_equal(parse_uint("42", 1, 100, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 42);
	assert_int_equal(parse_uint("1", 1, 100, &n, err, sizeof(err)), 0);
	assert_int_equal(parse_uint("100", 1, 100, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 100);
	assert_int_equal(parse_uint("0", 1, 100, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "from 1 to 100"));
	assert_int_equal(parse_uint("101", 1, 100, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_uint("-1", 0, 100, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_uint("", 0, 100, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_uint("4x", 0, 100, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_uint("99999999999999999999999", 0, 100, &n, err, sizeof(err)), -1);
}

static void mode_octal(void **state)
{
	(void)state;
	mode_t mode = 0;
	assert_int_equal(parse_mode("0600", &mode, err, sizeof(err)), 0);
	assert_int_equal(mode, 0600);
	assert_int_equal(parse_mode("660", &mode, err, sizeof(err)), 0);
	assert_int_equal(mode, 0660);
	assert_int_equal(parse_mode("0800", &mode, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "octal"));
	assert_int_equal(parse_mode("", &mode, err, sizeof(err)), -1);
	assert_int_equal(parse_mode("17777", &mode, err, sizeof(err)), -1);
	assert_int_equal(parse_mode("rw", &mode, err, sizeof(err)), -1);
}

static void umask_octal_up_to_0777(void **state)
{
	(void)state;
	mode_t mask = 1;
	assert_int_equal(parse_umask("0", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(parse_umask("0777", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 0777);
	assert_int_equal(parse_umask("027", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 027);
	assert_int_equal(parse_umask("01000", &mask, err, sizeof(err)), -1);
	assert_string_equal(err, "expected an octal umask from 0000 to 0777 like 0027, got \"01000\"");
	assert_int_equal(parse_umask("8", &mask, err, sizeof(err)), -1);
	assert_int_equal(parse_umask("", &mask, err, sizeof(err)), -1);
	assert_int_equal(mask, 027);
}

static void int_range_with_sign(void **state)
{
	(void)state;
	long n = 0;
	assert_int_equal(parse_int("-20", -20, 19, &n, err, sizeof(err)), 0);
	assert_int_equal(n, -20);
	assert_int_equal(parse_int("19", -20, 19, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 19);
	assert_int_equal(parse_int("0", -20, 19, &n, err, sizeof(err)), 0);
	assert_int_equal(parse_int("20", -20, 19, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "expected a whole number from -20 to 19, got \"20\"");
	assert_int_equal(parse_int("-21", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int("+1", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int("-", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int(" 1", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int("--1", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int("", -20, 19, &n, err, sizeof(err)), -1);
	assert_int_equal(parse_int("-99999999999999999999999", LONG_MIN, 0, &n, err, sizeof(err)),
		-1);
}

/* Resource limits */

static void limit_one_value_is_both(void **state)
{
	(void)state;
	rlim_t soft = 1, hard = 1;
	assert_int_equal(parse_limit("1024", false, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == 1024 && hard == 1024);
	assert_int_equal(parse_limit("infinity", false, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == RLIM_INFINITY && hard == RLIM_INFINITY);
	assert_int_equal(parse_limit("0", true, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == 0 && hard == 0);
}

static void limit_soft_and_hard(void **state)
{
	(void)state;
	rlim_t soft = 0, hard = 0;
	assert_int_equal(parse_limit("1024:4096", false, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == 1024 && hard == 4096);
	assert_int_equal(parse_limit("8MiB:infinity", true, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == 8 << 20 && hard == RLIM_INFINITY);
	assert_int_equal(parse_limit("64K:65536", true, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == 65536 && hard == 65536);
	assert_int_equal(parse_limit("infinity:infinity", false, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == RLIM_INFINITY);
}

static void limit_invalid_rejected(void **state)
{
	(void)state;
	rlim_t soft = 7, hard = 7;
	static const char *const bad[] = {"", ":", "1:", ":1", "1:2:3", "-1", "1 ", "lots",
		"Infinity", "8MiB", "18446744073709551615", "18446744073709551616", "0x10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_limit(bad[i], false, &soft, &hard, err, sizeof(err)) == 0)
			fail_msg("limit \"%s\" taken", bad[i]);
	}
	assert_string_equal(err, "expected SOFT[:HARD], each a whole number or infinity, got \"0x10\"");
	assert_int_equal(parse_limit("1KB", true, &soft, &hard, err, sizeof(err)), -1);
	assert_string_equal(err, "expected SOFT[:HARD], each a size like 8MiB or infinity, got \"1KB\"");
	assert_int_equal(parse_limit("2:1", false, &soft, &hard, err, sizeof(err)), -1);
	assert_string_equal(err, "the soft limit 2 is above the hard limit 1");
	assert_int_equal(parse_limit("infinity:1GiB", true, &soft, &hard, err, sizeof(err)), -1);
	assert_string_equal(err, "the soft limit infinity is above the hard limit 1GiB");
	assert_true(soft == 7 && hard == 7);
}

static void format_limit_round_trips(void **state)
{
	(void)state;
	char text[64];
	rlim_t soft, hard;
	format_limit(1024, 1024, false, text, sizeof(text));
	assert_string_equal(text, "1024");
	format_limit(1024, RLIM_INFINITY, false, text, sizeof(text));
	assert_string_equal(text, "1024:infinity");
	format_limit(8 << 20, 16 << 20, true, text, sizeof(text));
	assert_string_equal(text, "8MiB:16MiB");
	format_limit(RLIM_INFINITY - 1, RLIM_INFINITY - 1, true, text, sizeof(text));
	assert_int_equal(parse_limit(text, true, &soft, &hard, err, sizeof(err)), 0);
	assert_true(soft == RLIM_INFINITY - 1 && hard == soft);
}

/* Cgroup limits and where the cgroups are */

// Parses s as form, and checks what is written to the file and the normal form.
static void assert_cgroup_limit(const char *s, enum cgroup_form form, const char *value,
	const char *text)
{
	char v[PARSE_CGROUP_VALUE_MAX], t[PARSE_CGROUP_VALUE_MAX];
	err[0] = '\0';
	if (parse_cgroup_limit(s, form, v, t, err, sizeof(err)) < 0)
		fail_msg("\"%s\" refused: %s", s, err);
	assert_string_equal(v, value);
	assert_string_equal(t, text);
}

static void assert_cgroup_limit_refused(const char *s, enum cgroup_form form, const char *why)
{
	char v[PARSE_CGROUP_VALUE_MAX] = "v", t[PARSE_CGROUP_VALUE_MAX] = "t";
	if (parse_cgroup_limit(s, form, v, t, err, sizeof(err)) == 0)
		fail_msg("\"%s\" taken as \"%s\"", s, v);
	assert_string_equal(err, why);
	assert_string_equal(v, "v");
	assert_string_equal(t, "t");
}

static void cgroup_memory_is_bytes_or_max(void **state)
{
	(void)state;
	assert_cgroup_limit("512MiB", CGROUP_FORM_BYTES, "536870912", "512MiB");
	assert_cgroup_limit("536870912", CGROUP_FORM_BYTES, "536870912", "512MiB");
	assert_cgroup_limit("4096", CGROUP_FORM_BYTES, "4096", "4KiB");
	assert_cgroup_limit("4097B", CGROUP_FORM_BYTES, "4097", "4097");
	assert_cgroup_limit("16T", CGROUP_FORM_BYTES, "17592186044416", "16TiB");
	assert_cgroup_limit("18446744073709551615", CGROUP_FORM_BYTES, "18446744073709551615",
		"18446744073709551615");
	assert_cgroup_limit("max", CGROUP_FORM_BYTES, "max", "max");
}

static void cgroup_memory_below_4k_refused(void **state)
{
	(void)state;
	static const char *const small[] = {"0", "4095", "1K", "3KiB", "0MiB"};
	char why[128];
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		snprintf(why, sizeof(why), "must be at least 4KiB, or max for no limit, got \"%s\"",
			small[i]);
		assert_cgroup_limit_refused(small[i], CGROUP_FORM_BYTES, why);
	}
	static const char *const bad[] = {"", "MAX", "infinity", "-1", "1.5G", "512MB", "max ",
		"18446744073709551616"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(why, sizeof(why), "expected a size like 512MiB, or max, got \"%s\"",
			bad[i]);
		assert_cgroup_limit_refused(bad[i], CGROUP_FORM_BYTES, why);
	}
}

static void cgroup_cpu_is_a_percentage_of_one_cpu(void **state)
{
	(void)state;
	assert_cgroup_limit("150%", CGROUP_FORM_CPU, "150000 100000", "150%");
	assert_cgroup_limit("1%", CGROUP_FORM_CPU, "1000 100000", "1%");
	assert_cgroup_limit("100%", CGROUP_FORM_CPU, "100000 100000", "100%");
	assert_cgroup_limit("050%", CGROUP_FORM_CPU, "50000 100000", "50%");
	assert_cgroup_limit("102400%", CGROUP_FORM_CPU, "102400000 100000", "102400%");
	assert_cgroup_limit("max", CGROUP_FORM_CPU, "max 100000", "max");
	static const char *const bad[] = {"0%", "150", "1.5", "1.5%", "%", "", "-5%", "102401%",
		"99999999999999999999%", "150 %", "150%%", "max%", "infinity"};
	char why[160];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(why, sizeof(why),
			"expected a whole percentage of one CPU from 1%% to 102400%% like 150%%, "
			"or max, got \"%s\"",
			bad[i]);
		assert_cgroup_limit_refused(bad[i], CGROUP_FORM_CPU, why);
	}
}

static void cgroup_weights_and_pids(void **state)
{
	(void)state;
	assert_cgroup_limit("1", CGROUP_FORM_WEIGHT, "1", "1");
	assert_cgroup_limit("10000", CGROUP_FORM_WEIGHT, "10000", "10000");
	assert_cgroup_limit("0100", CGROUP_FORM_WEIGHT, "100", "100");
	assert_cgroup_limit_refused("0", CGROUP_FORM_WEIGHT,
		"expected a whole number from 1 to 10000, got \"0\"");
	assert_cgroup_limit_refused("10001", CGROUP_FORM_WEIGHT,
		"expected a whole number from 1 to 10000, got \"10001\"");
	assert_cgroup_limit_refused("max", CGROUP_FORM_WEIGHT,
		"expected a whole number from 1 to 10000, got \"max\"");
	assert_cgroup_limit("1", CGROUP_FORM_PIDS, "1", "1");
	assert_cgroup_limit("4194304", CGROUP_FORM_PIDS, "4194304", "4194304");
	assert_cgroup_limit("max", CGROUP_FORM_PIDS, "max", "max");
	assert_cgroup_limit_refused("0", CGROUP_FORM_PIDS,
		"expected a whole number from 1 to 4194304, or max, got \"0\"");
	assert_cgroup_limit_refused("4194305", CGROUP_FORM_PIDS,
		"expected a whole number from 1 to 4194304, or max, got \"4194305\"");
	assert_cgroup_limit_refused("1K", CGROUP_FORM_PIDS,
		"expected a whole number from 1 to 4194304, or max, got \"1K\"");
}

static void cgroup_auto_none_or_a_plain_absolute_path(void **state)
{
	(void)state;
	bool is_auto = false;
	assert_int_equal(parse_cgroup("auto", &is_auto, err, sizeof(err)), 0);
	assert_true(is_auto);
	static const char *const good[] = {"none", "/sys/fs/cgroup/baton", "/", "/a/b/",
		"//a", "/a/.b/c..", "/a/.../b", "/.x"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (parse_cgroup(good[i], &is_auto, err, sizeof(err)) < 0)
			fail_msg("\"%s\" refused: %s", good[i], err);
		assert_false(is_auto);
	}
	static const char *const bad[] = {"", "AUTO", "sys/fs/cgroup", "./x", "/.", "/..",
		"/a/./b", "/a/../b", "/a/..", "/a/.", "/a//./b", "~/cg"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_cgroup(bad[i], &is_auto, err, sizeof(err)) == 0)
			fail_msg("\"%s\" taken", bad[i]);
	}
	assert_string_equal(err,
		"expected auto, none or an absolute path with no . or .. component, got \"~/cg\"");
}

static void env_names(void **state)
{
	(void)state;
	assert_true(env_name_valid("PATH", 4));
	assert_true(env_name_valid("_a1", 3));
	assert_true(env_name_valid("A=1", 1));
	assert_false(env_name_valid("", 0));
	assert_false(env_name_valid("1A", 2));
	assert_false(env_name_valid("A-B", 3));
	assert_false(env_name_valid("A B", 3));
	assert_false(env_name_valid("A=1", 3));
	assert_false(env_name_valid("\xc3\xa9", 2));
}

/* Addresses */

static void address_tcp_ipv4(void **state)
{
	(void)state;
	struct address a;
	assert_int_equal(parse_address("tcp:127.0.0.1:8080", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, ADDRESS_TCP);
	assert_false(a.ipv6);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 8080);
}

static void address_tcp_ipv6(void **state)
{
	(void)state;
	struct address a;
	assert_int_equal(parse_address("tcp:[::1]:0", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, ADDRESS_TCP);
	assert_true(a.ipv6);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 0);
	assert_int_equal(parse_address("tcp:[::]:80", &a, err, sizeof(err)), 0);
	assert_true(a.ipv6);
	assert_string_equal(a.host, "::");
	assert_int_equal(a.port, 80);
}

static void address_udp(void **state)
{
	(void)state;
	struct address a;
	assert_int_equal(parse_address("udp:0.0.0.0:53", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, ADDRESS_UDP);
	assert_string_equal(a.host, "0.0.0.0");
	assert_int_equal(a.port, 53);
	assert_int_equal(parse_address("udp:[fe80::1]:65535", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, ADDRESS_UDP);
	assert_true(a.ipv6);
	assert_int_equal(a.port, 65535);
}

static void address_unix(void **state)
{
	(void)state;
	struct address a;
	assert_int_equal(parse_address("unix:/run/baton/web.sock", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, ADDRESS_UNIX);
	assert_string_equal(a.path, "/run/baton/web.sock");
}

static void address_unix_path_limit(void **state)
{
	(void)state;
	char s[5 + 109];
	struct address a;
	strcpy(s, "unix:");
	memset(s + 5, 'p', 107);
	s[5] = '/';
	s[5 + 107] = '\0';
	assert_int_equal(parse_address(s, &a, err, sizeof(err)), 0);
	assert_int_equal(strlen(a.path), 107);
	s[5 + 107] = 'p';
	s[5 + 108] = '\0';
	assert_int_equal(parse_address(s, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "107"));
}

static void assert_address_rejected(const char *s, const char *expected)
{
	struct address a;
	err[0] = '\0';
	assert_int_equal(parse_address(s, &a, err, sizeof(err)), -1);
	if (!strstr(err, expected))
		fail_msg("error for \"%s\" is \"%s\", expected it to mention \"%s\"", s, err,
			expected);
}

static void address_invalid_rejected(void **state)
{
	(void)state;
	assert_address_rejected("tcp:localhost:80", "numeric address");
	assert_address_rejected("tcp:127.0.0.1", "numeric address");
	assert_address_rejected("tcp:1.2.3.4:70000", "port from 0 to 65535");
	assert_address_rejected("tcp:127.0.0.1:", "port");
	assert_address_rejected("tcp::80", "numeric address");
	assert_address_rejected("tcp:[::1]", "numeric address");
	assert_address_rejected("tcp:[::1]80", "numeric address");
	assert_address_rejected("tcp:::1:80", "numeric address");
	assert_address_rejected("tcp:[127.0.0.1]:80", "numeric address");
	assert_address_rejected("tcp:127.0.0.1:-1", "port");
	assert_address_rejected("udp:1.2.3:53", "numeric address");
	assert_address_rejected("unix:relative/path", "absolute path");
	assert_address_rejected("unix:", "absolute path");
	assert_address_rejected("ftp:1.2.3.4:21", "tcp:HOST:PORT");
	assert_address_rejected("", "tcp:HOST:PORT");
	assert_address_rejected("TCP:127.0.0.1:80", "tcp:HOST:PORT");
}

/* Words */

static char **words(const char *s, size_t *n)
{
	err[0] = '\0';
	char **argv = parse_words(s, n, err, sizeof(err));
	if (!argv)
		fail_msg("parse_words(\"%s\") failed: %s", s, err);
	return argv;
}

static void words_split_at_blanks(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("  /bin/echo\thello   world\n", &n);
	assert_int_equal(n, 3);
	assert_string_equal(argv[0], "/bin/echo");
	assert_string_equal(argv[1], "hello");
	assert_string_equal(argv[2], "world");
	assert_null(argv[3]);
	free(argv);
}

static void words_single_quotes_are_literal(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("sh -c 'echo \"$HOME\" \\n'", &n);
	assert_int_equal(n, 3);
	assert_string_equal(argv[2], "echo \"$HOME\" \\n");
	free(argv);
}

static void words_double_quotes_honour_escapes(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("\"a \\\"b\\\" \\\\ \\$x \\` \\n 'q'\"", &n);
	assert_int_equal(n, 1);
	assert_string_equal(argv[0], "a \"b\" \\ $x ` \\n 'q'");
	free(argv);
}

static void words_backslash_quotes_next_character(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("a\\ b c\\'d \\\\", &n);
	assert_int_equal(n, 3);
	assert_string_equal(argv[0], "a b");
	assert_string_equal(argv[1], "c'd");
	assert_string_equal(argv[2], "\\");
	free(argv);
}

static void words_adjacent_quotes_join(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("pre'mid'\"post\"fix", &n);
	assert_int_equal(n, 1);
	assert_string_equal(argv[0], "premidpostfix");
	free(argv);
}

static void words_empty_quoted_words_kept(void **state)
{
	(void)state;
	size_t n = 0;
	char **argv = words("a '' \"\" b", &n);
	assert_int_equal(n, 4);
	assert_string_equal(argv[0], "a");
	assert_string_equal(argv[1], "");
	assert_string_equal(argv[2], "");
	assert_string_equal(argv[3], "b");
	assert_null(argv[4]);
	free(argv);
	argv = words("'' '' '' ''", &n);
	assert_int_equal(n, 4);
	assert_string_equal(argv[3], "");
	free(argv);
}

static void words_many_short_words(void **state)
{
	(void)state;
	char s[2001];
	for (int i = 0; i < 1000; i++) {
		s[2 * i] = (char)('a' + i % 26);
		s[2 * i + 1] = ' ';
	}
	s[1999] = '\0';
	size_t n = 0;
	char **argv = words(s, &n);
	assert_int_equal(n, 1000);
	assert_string_equal(argv[999], "l");
	assert_null(argv[1000]);
	free(argv);
}

static void assert_words_rejected(const char *s, const char *expected)
{
	size_t n = 99;
	err[0] = '\0';
	assert_null(parse_words(s, &n, err, sizeof(err)));
	if (!strstr(err, expected))
		fail_msg("error for \"%s\" is \"%s\", expected \"%s\"", s, err, expected);
}

static void words_errors(void **state)
{
	(void)state;
	assert_words_rejected("echo 'open", "single quote");
	assert_words_rejected("echo \"open", "double quote");
	assert_words_rejected("echo \"a\\\"", "double quote");
	assert_words_rejected("echo \\", "backslash");
	assert_words_rejected("", "at least one word");
	assert_words_rejected(" \t ", "at least one word");
}

/* Ready */

static void ready_modes(void **state)
{
	(void)state;
	struct ready_spec r;
	assert_int_equal(parse_ready("notify", &r, err, sizeof(err)), 0);
	assert_int_equal(r.mode, READY_NOTIFY);
	assert_int_equal(parse_ready("none", &r, err, sizeof(err)), 0);
	assert_int_equal(r.mode, READY_NONE);
	assert_int_equal(parse_ready("fd:5", &r, err, sizeof(err)), 0);
	assert_int_equal(r.mode, READY_FD);
	assert_int_equal(r.fd, 5);
	assert_int_equal(parse_ready("delay:500ms", &r, err, sizeof(err)), 0);
	assert_int_equal(r.mode, READY_DELAY);
	assert_float_equal(r.delay, 0.5, 1e-12);
}

static void ready_bad_fd_rejected(void **state)
{
	(void)state;
	struct ready_spec r;
	assert_int_equal(parse_ready("fd:2", &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "from 3 to"));
	assert_int_equal(parse_ready("fd:abc", &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected"));
	assert_int_equal(parse_ready("fd:", &r, err, sizeof(err)), -1);
	assert_int_equal(parse_ready("fd:1024", &r, err, sizeof(err)), -1);
}

static void ready_bad_values_rejected(void **state)
{
	(void)state;
	struct ready_spec r;
	assert_int_equal(parse_ready("delay:soon", &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected a duration"));
	assert_int_equal(parse_ready("delay:", &r, err, sizeof(err)), -1);
	assert_int_equal(parse_ready("Notify", &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected notify, fd:N, delay:DURATION, exec:COMMAND or none"));
	assert_int_equal(parse_ready("", &r, err, sizeof(err)), -1);
}

/* Restart, upgrade, start limit, booleans */

static void restart_policies(void **state)
{
	(void)state;
	enum restart_policy p;
	assert_int_equal(parse_restart("always", &p, err, sizeof(err)), 0);
	assert_int_equal(p, RESTART_ALWAYS);
	assert_int_equal(parse_restart("on-failure", &p, err, sizeof(err)), 0);
	assert_int_equal(p, RESTART_ON_FAILURE);
	assert_int_equal(parse_restart("never", &p, err, sizeof(err)), 0);
	assert_int_equal(p, RESTART_NEVER);
	assert_string_equal(restart_name(RESTART_ON_FAILURE), "on-failure");
	assert_string_equal(restart_name(RESTART_NEVER), "never");
	assert_string_equal(restart_name(RESTART_ALWAYS), "always");
}

static void restart_invalid_rejected(void **state)
{
	(void)state;
	enum restart_policy p;
	assert_int_equal(parse_restart("sometimes", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected always, on-failure or never"));
	assert_int_equal(parse_restart("", &p, err, sizeof(err)), -1);
	assert_int_equal(parse_restart("on_failure", &p, err, sizeof(err)), -1);
}

static void upgrade_modes(void **state)
{
	(void)state;
	unsigned batch = 99;
	assert_int_equal(parse_upgrade("all", &batch, err, sizeof(err)), 0);
	assert_int_equal(batch, 0);
	assert_int_equal(parse_upgrade("rolling", &batch, err, sizeof(err)), 0);
	assert_int_equal(batch, 1);
	assert_int_equal(parse_upgrade("rolling:3", &batch, err, sizeof(err)), 0);
	assert_int_equal(batch, 3);
}

static void upgrade_invalid_rejected(void **state)
{
	(void)state;
	unsigned batch = 99;
	assert_int_equal(parse_upgrade("rolling:0", &batch, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rolling:N"));
	assert_int_equal(parse_upgrade("rolling:", &batch, err, sizeof(err)), -1);
	assert_int_equal(parse_upgrade("rolling:x", &batch, err, sizeof(err)), -1);
	assert_int_equal(parse_upgrade("rolling:10001", &batch, err, sizeof(err)), -1);
	assert_int_equal(parse_upgrade("some", &batch, err, sizeof(err)), -1);
	assert_int_equal(batch, 99);
}

static void start_limit_values(void **state)
{
	(void)state;
	unsigned burst = 0;
	double interval = 0;
	assert_int_equal(parse_start_limit("5/60s", &burst, &interval, err, sizeof(err)), 0);
	assert_int_equal(burst, 5);
	assert_float_equal(interval, 60, 1e-12);
	assert_int_equal(parse_start_limit("3/1m30s", &burst, &interval, err, sizeof(err)), 0);
	assert_int_equal(burst, 3);
	assert_float_equal(interval, 90, 1e-12);
	assert_int_equal(parse_start_limit("none", &burst, &interval, err, sizeof(err)), 0);
	assert_int_equal(burst, 0);
}

static void start_limit_invalid_rejected(void **state)
{
	(void)state;
	static const char *const bad[] = {"5", "5/", "/5s", "0/60s", "x/60s", "5/0s", "5/soon",
		"", "-1/5s", "12345678901234567890/5s"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned burst = 0;
		double interval = 0;
		err[0] = '\0';
		if (parse_start_limit(bad[i], &burst, &interval, err, sizeof(err)) != -1)
			fail_msg("start limit \"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "like 5/60s"));
	}
}

static void booleans(void **state)
{
	(void)state;
	static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True"};
	static const char *const no[] = {"no", "false", "off", "0", "NO", "Off"};
	bool b;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(parse_bool(yes[i], &b, err, sizeof(err)), 0);
		assert_true(b);
		assert_int_equal(parse_bool(no[i], &b, err, sizeof(err)), 0);
		assert_false(b);
	}
}

static void booleans_invalid_rejected(void **state)
{
	(void)state;
	bool b;
	assert_int_equal(parse_bool("maybe", &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected yes or no"));
	assert_int_equal(parse_bool("", &b, err, sizeof(err)), -1);
	assert_int_equal(parse_bool("2", &b, err, sizeof(err)), -1);
	assert_int_equal(parse_bool("yes ", &b, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duration_units),
		cmocka_unit_test(duration_fractions_and_compounds),
		cmocka_unit_test(duration_bare_number_is_seconds),
		cmocka_unit_test(duration_one_year_is_the_limit),
		cmocka_unit_test(duration_malformed_rejected),
		cmocka_unit_test(duration_error_quotes_input),
		cmocka_unit_test(format_duration_normal_form),
		cmocka_unit_test(format_duration_round_trips),
		cmocka_unit_test(format_duration_round_trips_decimal_seconds),
		cmocka_unit_test(size_units),
		cmocka_unit_test(size_limit_is_uint64),
		cmocka_unit_test(size_malformed_rejected),
		cmocka_unit_test(size_error_quotes_input),
		cmocka_unit_test(format_size_shortest_exact),
		cmocka_unit_test(format_size_round_trips),
		cmocka_unit_test(signal_by_name_prefix_case_and_number),
		cmocka_unit_test(signal_invalid_rejected),
		cmocka_unit_test(signal_name_of_number),
		cmocka_unit_test(uint_range),
		cmocka_unit_test(mode_octal),
		cmocka_unit_test(umask_octal_up_to_0777),
		cmocka_unit_test(int_range_with_sign),
		cmocka_unit_test(limit_one_value_is_both),
		cmocka_unit_test(limit_soft_and_hard),
		cmocka_unit_test(limit_invalid_rejected),
		cmocka_unit_test(format_limit_round_trips),
		cmocka_unit_test(cgroup_memory_is_bytes_or_max),
		cmocka_unit_test(cgroup_memory_below_4k_refused),
		cmocka_unit_test(cgroup_cpu_is_a_percentage_of_one_cpu),
		cmocka_unit_test(cgroup_weights_and_pids),
		cmocka_unit_test(cgroup_auto_none_or_a_plain_absolute_path),
		cmocka_unit_test(env_names),
		cmocka_unit_test(address_tcp_ipv4),
		cmocka_unit_test(address_tcp_ipv6),
		cmocka_unit_test(address_udp),
		cmocka_unit_test(address_unix),
		cmocka_unit_test(address_unix_path_limit),
		cmocka_unit_test(address_invalid_rejected),
		cmocka_unit_test(words_split_at_blanks),
		cmocka_unit_test(words_single_quotes_are_literal),
		cmocka_unit_test(words_double_quotes_honour_escapes),
		cmocka_unit_test(words_backslash_quotes_next_character),
		cmocka_unit_test(words_adjacent_quotes_join),
		cmocka_unit_test(words_empty_quoted_words_kept),
		cmocka_unit_test(words_many_short_words),
		cmocka_unit_test(words_errors),
		cmocka_unit_test(ready_modes),
		cmocka_unit_test(ready_bad_fd_rejected),
		cmocka_unit_test(ready_bad_values_rejected),
		cmocka_unit_test(restart_policies),
		cmocka_unit_test(restart_invalid_rejected),
		cmocka_unit_test(upgrade_modes),
		cmocka_unit_test(upgrade_invalid_rejected),
		cmocka_unit_test(start_limit_values),
		cmocka_unit_test(start_limit_invalid_rejected),
		cmocka_unit_test(booleans),
		cmocka_unit_test(booleans_invalid_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
