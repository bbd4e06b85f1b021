#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logfile.h"

/* Each test's temporary directory and its log file, PATH. */
static char dir[64];
static char path[128];
static char err[512];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_logfile.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/web.log", dir);
	return 0;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

// The content of the file, or NULL when there is none.
static const char *read_file(const char *name)
{
	static char buf[65536];
	FILE *fp = fopen(name, "r");
	if (!fp)
		return NULL;
	size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[len] = '\0';
	fclose(fp);
	return buf;
}

// The content of PATH, or of PATH.n when n > 0.
static const char *content(unsigned n)
{
	char name[160];
	if (n == 0)
		return read_file(path);
	snprintf(name, sizeof(name), "%s.%u", path, n);
	return read_file(name);
}

static struct logfile *open_log(uint64_t max_size, unsigned keep)
{
	struct logfile *f = logfile_open(path, max_size, keep, err, sizeof(err));
	if (!f)
		fail_msg("%s", err);
	return f;
}

static void write_line(struct logfile *f, const char *line)
{
	assert_int_equal(logfile_write(f, line, strlen(line)), 0);
}

static void created_with_mode_0640_and_appended_to(void **state)
{
	(void)state;
	mode_t old = umask(0);
	struct logfile *f = open_log(0, 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	write_line(f, "one\n");
	logfile_close(f);
	f = open_log(0, 0);
	write_line(f, "two\n");
	assert_string_equal(content(0), "one\ntwo\n");
	logfile_close(f);
	assert_null(content(1));
}

static void rotated_at_the_size(void **state)
{
	(void)state;
	struct logfile *f = open_log(20, 3);
	write_line(f, "0123456789\n");
	write_line(f, "abcdefgh\n");
	// 20 bytes are not past 20; 22 would be, so the file rotates first.
	assert_null(content(1));
	assert_string_equal(content(0), "0123456789\nabcdefgh\n");
	write_line(f, "x\n");
	assert_string_equal(content(1), "0123456789\nabcdefgh\n");
	assert_string_equal(content(0), "x\n");
	assert_int_equal(logfile_rotate_error(f), 0);
	logfile_close(f);
}

static void old_files_kept_as_many_as_asked(void **state)
{
	(void)state;
	struct logfile *f = open_log(4, 2);
	write_line(f, "1111");
	write_line(f, "2222");
	write_line(f, "3333");
	write_line(f, "4444");
	write_line(f, "5555");
	assert_string_equal(content(0), "5555");
	assert_string_equal(content(1), "4444");
	assert_string_equal(content(2), "3333");
	assert_null(content(3));
	logfile_close(f);
}

static void nothing_lost_across_rotations(void **state)
{
	(void)state;
	static char written[8192], read_back[8192];
	static const char dots[] = "..............................";
	struct logfile *f = open_log(100, LOGFILE_KEEP_MAX);
	size_t len = 0;
	for (unsigned i = 0; i < 200; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "line %u %.*s\n", i, (int)(i % 30), dots);
		assert_int_equal(logfile_write(f, line, (size_t)n), 0);
		memcpy(written + len, line, (size_t)n);
		len += (size_t)n;
	}
	logfile_close(f);
	read_back[0] = '\0';
	unsigned files = 1;
	while (content(files))
		files++;
	for (unsigned n = files; n-- > 0;) {
		const char *c = content(n);
		assert_true(strlen(c) <= 100);
		assert_true(c[strlen(c) - 1] == '\n');
		strcat(read_back, c);
	}
	assert_true(files > 40);
	assert_int_equal(strlen(read_back), len);
	assert_memory_equal(read_back, written, len);
}

static void write_larger_than_the_size_has_a_file_of_its_own(void **state)
{
	(void)state;
	struct logfile *f = open_log(8, 5);
	write_line(f, "a much longer line\n");
	write_line(f, "another long line\n");
	write_line(f, "ok\n");
	assert_string_equal(content(2), "a much longer line\n");
	assert_string_equal(content(1), "another long line\n");
	assert_string_equal(content(0), "ok\n");
	logfile_close(f);
}

static void existing_file_counts_toward_the_size(void **state)
{
	(void)state;
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("from before, long enough\n", fp);
	fclose(fp);
	struct logfile *f = open_log(10, 1);
	write_line(f, "new\n");
	assert_string_equal(content(1), "from before, long enough\n");
	assert_string_equal(content(0), "new\n");
	logfile_close(f);
}

// The fds this process has open.
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own */
}

static void rotation_frees_the_oldest_file_in_steps(void **state)
{
	(void)state;
	// PATH.1 of 20 MiB, which the next rotation drops.
	char old[160];
	snprintf(old, sizeof(old), "%s.1", path);
	FILE *fp = fopen(old, "w");
	assert_non_null(fp);
	assert_int_equal(ftruncate(fileno(fp), 20 << 20), 0);
	fclose(fp);
	int fds = count_fds();
	struct logfile *f = open_log(4, 1);
	write_line(f, "1111");
	assert_false(logfile_reclaiming(f));
	write_line(f, "2222");
	assert_string_equal(content(1), "1111");
	assert_string_equal(content(0), "2222");
	// Its name taken, the old file is open still, freed 4 MiB a step.
	assert_true(logfile_reclaiming(f));
	assert_int_equal(count_fds(), fds + 2);
	int steps = 0;
	while (logfile_reclaim(f, 4 << 20))
		steps++;
	assert_int_equal(steps, 4);
	assert_false(logfile_reclaiming(f));
	assert_int_equal(count_fds(), fds + 1);
	assert_int_equal(logfile_reclaim(f, 4 << 20), 0);
	logfile_close(f);
	assert_int_equal(count_fds(), fds);
}

// What a symbolic link or another name of the oldest file leads to keeps
// what it holds: only a file with no other name is freed.
static void rotation_leaves_what_another_name_holds(void **state)
{
	(void)state;
	char old[160], target[160], other[160];
	snprintf(old, sizeof(old), "%s.1", path);
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	FILE *fp = fopen(target, "w");
	assert_non_null(fp);
	fputs("kept\n", fp);
	fclose(fp);
	assert_int_equal(symlink(target, old), 0);
	struct logfile *f = open_log(4, 1);
	write_line(f, "1111");
	write_line(f, "2222");
	assert_false(logfile_reclaiming(f));
	while (logfile_reclaim(f, 1))
		;
	assert_string_equal(content(1), "1111");
	assert_string_equal(read_file(target), "kept\n");
	// A hard link: the rotation drops PATH.1's name only.
	assert_int_equal(link(old, other), 0);
	write_line(f, "3333");
	assert_false(logfile_reclaiming(f));
	while (logfile_reclaim(f, 1))
		;
	assert_string_equal(content(1), "2222");
	assert_string_equal(read_file(other), "1111");
	logfile_close(f);
}

static void keep_0_empties_the_full_file(void **state)
{
	(void)state;
	struct logfile *f = open_log(10, 0);
	write_line(f, "12345678\n");
	write_line(f, "next\n");
	assert_string_equal(content(0), "next\n");
	assert_null(content(1));
	logfile_close(f);
}

static void size_0_never_rotates(void **state)
{
	(void)state;
	struct logfile *f = open_log(0, 3);
	for (int i = 0; i < 100; i++)
		write_line(f, "some line that takes room\n");
	assert_int_equal(strlen(content(0)), 100 * 26);
	assert_null(content(1));
	logfile_close(f);
}

static void reopen_after_the_file_was_moved_writes_a_new_one(void **state)
{
	(void)state;
	char moved[160];
	snprintf(moved, sizeof(moved), "%s/moved.log", dir);
	struct logfile *f = open_log(0, 0);
	write_line(f, "a\n");
	assert_int_equal(rename(path, moved), 0);
	write_line(f, "b\n");
	assert_null(content(0));
	assert_int_equal(logfile_reopen(f), 0);
	write_line(f, "c\n");
	assert_string_equal(content(0), "c\n");
	assert_string_equal(read_file(moved), "a\nb\n");
	logfile_close(f);
}

static void rotation_that_fails_loses_no_line(void **state)
{
	(void)state;
	char name[160];
	snprintf(name, sizeof(name), "%s.1", path);
	// PATH cannot be renamed onto a directory.
	assert_int_equal(mkdir(name, 0700), 0);
	struct logfile *f = open_log(10, 1);
	write_line(f, "12345678\n");
	write_line(f, "kept\n");
	assert_int_equal(logfile_rotate_error(f), EISDIR);
	assert_int_equal(logfile_rotate_error(f), 0);
	assert_string_equal(content(0), "12345678\nkept\n");
	// The next try comes after another 10 bytes.
	write_line(f, "abc\n");
	assert_int_equal(logfile_rotate_error(f), 0);
	assert_int_equal(rmdir(name), 0);
	write_line(f, "defghijk\n");
	assert_int_equal(logfile_rotate_error(f), 0);
	assert_string_equal(content(1), "12345678\nkept\nabc\n");
	assert_string_equal(content(0), "defghijk\n");
	logfile_close(f);
}

// A write cut short by the file size limit leaves whole lines (EFBIG stands for ENOSPC).
static void failed_write_taken_back(void **state)
{
	(void)state;
	struct rlimit old, small;
	struct logfile *f = open_log(0, 0);
	write_line(f, "first\n");
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 10;
	void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	errno = 0;
	int rc = logfile_write(f, "second line\n", 12);
	int e = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, was);
	assert_int_equal(rc, -1);
	assert_int_equal(e, EFBIG);
	assert_string_equal(content(0), "first\n");
	write_line(f, "third\n");
	assert_string_equal(content(0), "first\nthird\n");
	logfile_close(f);
}

static void full_disk_is_enospc(void **state)
{
	(void)state;
	struct logfile *f = logfile_open("/dev/full", 10, 1, err, sizeof(err));
	if (!f)
		skip();
	errno = 0;
	assert_int_equal(logfile_write(f, "line\n", 5), -1);
	assert_int_equal(errno, ENOSPC);
	// Not a regular file: /dev/full is never renamed.
	assert_int_equal(logfile_write(f, "a longer line\n", 14), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(logfile_rotate_error(f), 0);
	logfile_close(f);
}

static void error_names_the_path_and_the_reason(void **state)
{
	(void)state;
	char missing[160], expected[600];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/web.log", dir);
	assert_null(logfile_open(missing, 0, 0, err, sizeof(err)));
	snprintf(expected, sizeof(expected), "log file %s: No such file or directory", missing);
	assert_string_equal(err, expected);
	snprintf(missing, sizeof(missing), "%s/no", dir);
	assert_int_equal(access(missing, F_OK), -1);
	assert_null(logfile_open(path, 0, LOGFILE_KEEP_MAX + 1, err, sizeof(err)));
	snprintf(expected, sizeof(expected), "log file %s: cannot keep 1001 old files, 1000 at most",
		path);
	assert_string_equal(err, expected);
}

static void unwritable_directory(void **state)
{
	(void)state;
	if (geteuid() == 0)
		skip(); // root writes anywhere
	char expected[600];
	assert_int_equal(chmod(dir, 0500), 0);
	struct logfile *f = logfile_open(path, 0, 0, err, sizeof(err));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_null(f);
	snprintf(expected, sizeof(expected), "log file %s: Permission denied", path);
	assert_string_equal(err, expected);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, make_dir, remove_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(created_with_mode_0640_and_appended_to),
		TEST(rotated_at_the_size),
		TEST(old_files_kept_as_many_as_asked),
		TEST(nothing_lost_across_rotations),
		TEST(write_larger_than_the_size_has_a_file_of_its_own),
		TEST(existing_file_counts_toward_the_size),
		TEST(rotation_frees_the_oldest_file_in_steps),
		TEST(rotation_leaves_what_another_name_holds),
		TEST(keep_0_empties_the_full_file),
		TEST(size_0_never_rotates),
		TEST(reopen_after_the_file_was_moved_writes_a_new_one),
		TEST(rotation_that_fails_loses_no_line),
		TEST(failed_write_taken_back),
		TEST(full_disk_is_enospc),
		TEST(error_names_the_path_and_the_reason),
		TEST(unwritable_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
