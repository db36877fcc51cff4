/*
 * powercut.c - an LD_PRELOAD write-order shim that models what a disk keeps after
 * a power cut, for Tollgate's power-loss tests (built by the test with gcc; never
 * part of the product).
 *
 * Environment:
 *   POWERCUT_DIR     the folder to watch (the spool); must exist. Only regular files
 *                    directly inside it are tracked; "*-shm" files are not (SQLite
 *                    rebuilds its WAL index from the WAL; on a power cut it is gone).
 *   POWERCUT_SHADOW  a folder the shim owns: data/<name> is the content of <name> as
 *                    of its last fsync/fdatasync, entries/<name> exists while the
 *                    directory entry <name> is durable (present at start, or present
 *                    when the folder itself was last fsynced).
 *   POWERCUT_IGNORE_FSYNC=1  fsync and fdatasync still run but make nothing durable
 *                    (a disk that lies about its cache): the negative control, which
 *                    must make a power-loss check fail.
 *   POWERCUT_FAIL_WHEN=<path>  while <path> exists, every fsync/fdatasync of a
 *                    tracked file fails with EIO and makes nothing durable
 *                    (RELIABILITY E5); with POWERCUT_FAIL_WRITES=1 write, pwrite and
 *                    ftruncate of tracked files fail with EIO too.
 *   POWERCUT_SLOW_WHEN=<path>  while <path> exists, every fsync/fdatasync of a
 *                    tracked file first sleeps POWERCUT_SLOW_MS (default 3000)
 *                    milliseconds: a disk in a slow spell (overload tests). With
 *                    POWERCUT_SLOW_WRITES=1 write and pwrite of tracked files sleep
 *                    first too, so that a kill can be aimed before a write reaches
 *                    the file (the aimed-kill tests, RELIABILITY E4). Each sleep
 *                    first creates <path>.held, so that a test knows the moment has
 *                    come.
 *
 * The model, per POSIX: data written with write/pwrite (and size changes by
 * ftruncate) become durable for a file when that file is fsynced or fdatasynced
 * (by any descriptor); a file created, unlinked or renamed changes its directory
 * entry durably only when the folder is fsynced. After the process is killed, the
 * test rebuilds the folder from the shadow: every name in entries/ with its content
 * from data/, nothing else. That is the least a disk must keep; a real disk may keep
 * more (unsynced writes that happened to reach it, torn or whole).
 *
 * Not modelled: writes through mmap, writev/pwritev, sync()/syncfs()/msync,
 * sync_file_range, O_SYNC/O_DSYNC descriptors (treated like ordinary ones, so the
 * model is stricter than the disk), and a rename over an existing name keeps only
 * the renamed file's content. SQLite in WAL mode uses none of these.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FILES 64
#define MAX_FDS 65536
#define DIR_FD (-1)

struct range { off_t start, end; };

struct file {
    char name[NAME_MAX + 1];
    int used;          /* slot in use */
    int live;          /* the name exists in the real folder */
    int durable;       /* entries/<name> exists */
    struct range *ranges;
    int count, capacity;
};

static char watched[PATH_MAX];
static size_t watched_len;
static char shadow[PATH_MAX];
static int enabled, ignore_fsync;
static char fail_when[PATH_MAX];
static char slow_when[PATH_MAX];
static long slow_ms = 3000;
static int fail_writes;
static int slow_writes;
static struct file files[MAX_FILES];
static _Atomic int fd_slot[MAX_FDS]; /* 0 untracked, DIR_FD the folder, k+1 files[k] */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_renameat)(int, const char *, int, const char *);

static void die(const char *what) {
    char text[PATH_MAX + 128];
    int n = snprintf(text, sizeof text, "powercut: %s: %s\n", what, strerror(errno));
    if (n > 0) real_write(2, text, (size_t)n);
    abort();
}

static void shadow_path(char *out, const char *kind, const char *name) {
    snprintf(out, PATH_MAX, "%s/%s/%s", shadow, kind, name);
}

/* Copies `length` bytes at `offset` from descriptor `from` to `to` (holes read as zeros). */
static void copy_range(int from, int to, off_t offset, off_t length) {
    char buffer[65536];
    while (length > 0) {
        size_t want = length < (off_t)sizeof buffer ? (size_t)length : sizeof buffer;
        ssize_t got = pread(from, buffer, want, offset);
        if (got < 0) { if (errno == EINTR) continue; die("pread"); }
        if (got == 0) break;
        for (ssize_t done = 0; done < got;) {
            ssize_t put = real_pwrite(to, buffer + done, (size_t)(got - done), offset + done);
            if (put < 0) { if (errno == EINTR) continue; die("pwrite shadow"); }
            done += put;
        }
        offset += got;
        length -= got;
    }
}

static void mark_entry(struct file *f, int durable) {
    char path[PATH_MAX];
    shadow_path(path, "entries", f->name);
    if (durable) {
        int fd = real_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) die("create entry marker");
        real_close(fd);
    } else if (real_unlink(path) != 0 && errno != ENOENT) {
        die("remove entry marker");
    }
    f->durable = durable;
}

static struct file *find(const char *name) {
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].used && strcmp(files[i].name, name) == 0) return &files[i];
    return NULL;
}

static struct file *add(const char *name) {
    for (int i = 0; i < MAX_FILES; i++) {
        if (!files[i].used) {
            memset(&files[i], 0, sizeof files[i]);
            files[i].used = 1;
            snprintf(files[i].name, sizeof files[i].name, "%s", name);
            return &files[i];
        }
    }
    errno = ENFILE;
    die("too many files in the watched folder");
    return NULL;
}

static void add_range(struct file *f, off_t start, off_t end) {
    if (end <= start) return;
    if (f->count > 0) {
        struct range *last = &f->ranges[f->count - 1];
        if (start <= last->end && end >= last->start) {
            if (start < last->start) last->start = start;
            if (end > last->end) last->end = end;
            return;
        }
    }
    if (f->count == f->capacity) {
        f->capacity = f->capacity ? f->capacity * 2 : 64;
        f->ranges = realloc(f->ranges, sizeof(struct range) * (size_t)f->capacity);
        if (!f->ranges) die("realloc");
    }
    f->ranges[f->count++] = (struct range){start, end};
}

/* The file name if `path` (relative to `dirfd`) names an entry directly inside the
 * watched folder, "" if it names the folder itself, NULL otherwise. */
static const char *watched_name(int dirfd, const char *path, char *buffer) {
    if (!enabled || !path) return NULL;
    char full[PATH_MAX];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return NULL;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0) return NULL;
            base[n] = 0;
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    /* Drop "/./" and trailing slashes; symbolic links are not resolved. */
    size_t length = strlen(full);
    while (length > 1 && full[length - 1] == '/') full[--length] = 0;
    char *dot;
    while ((dot = strstr(full, "/./"))) memmove(dot, dot + 2, strlen(dot + 2) + 1);
    if (strcmp(full, watched) == 0) return "";
    if (strncmp(full, watched, watched_len) != 0 || full[watched_len] != '/') return NULL;
    const char *name = full + watched_len + 1;
    if (!*name || strchr(name, '/')) return NULL;
    size_t n = strlen(name);
    if (n >= 4 && strcmp(name + n - 4, "-shm") == 0) return NULL;
    snprintf(buffer, NAME_MAX + 1, "%s", name);
    return buffer;
}

static void track(int fd, const char *name, int created, int truncated) {
    if (fd < 0 || fd >= MAX_FDS) return;
    if (!*name) { atomic_store(&fd_slot[fd], DIR_FD); return; }
    pthread_mutex_lock(&lock);
    struct file *f = find(name);
    if (!f || created) {
        if (!f) f = add(name);
        f->live = 1;
        f->count = 0;
        /* A new file: nothing of it is durable yet (its shadow content is empty). */
        char path[PATH_MAX];
        shadow_path(path, "data", name);
        int s = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s < 0) die("create shadow data");
        real_close(s);
    }
    f->live = 1;
    if (truncated) add_range(f, 0, (off_t)1 << 62);
    atomic_store(&fd_slot[fd], (int)(f - files) + 1);
    pthread_mutex_unlock(&lock);
}

static int open_common(int dirfd, const char *path, int flags, mode_t mode, int at) {
    char buffer[NAME_MAX + 1];
    const char *name = watched_name(dirfd, path, buffer);
    int existed = 1;
    if (name && *name && (flags & O_CREAT)) {
        struct stat info;
        existed = fstatat(dirfd, path, &info, 0) == 0;
    }
    int fd = at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
    if (fd >= 0 && name) {
        struct stat info;
        if (*name && (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode))) return fd;
        track(fd, name, !existed, (flags & O_TRUNC) != 0);
    }
    return fd;
}

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_common(AT_FDCWD, path, flags, mode, 0);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_common(AT_FDCWD, path, flags, mode, 0);
}

int openat(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_common(dirfd, path, flags, mode, 1);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_common(dirfd, path, flags, mode, 1);
}

int close(int fd) {
    if (fd >= 0 && fd < MAX_FDS) atomic_store(&fd_slot[fd], 0);
    return real_close(fd);
}

/* Whether the test asks for I/O errors now. */
static int failing(void) {
    return fail_when[0] && access(fail_when, F_OK) == 0;
}

static struct file *tracked(int fd) {
    if (fd < 0 || fd >= MAX_FDS) return NULL;
    int slot = atomic_load(&fd_slot[fd]);
    return slot > 0 ? &files[slot - 1] : NULL;
}

/* Sleeps POWERCUT_SLOW_MS while the trigger exists, announcing it with <trigger>.held. */
static void slow_down(void) {
    if (!slow_when[0] || access(slow_when, F_OK) != 0) return;
    char held[PATH_MAX + 8];
    snprintf(held, sizeof held, "%s.held", slow_when);
    int fd = real_open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) real_close(fd);
    usleep((useconds_t)slow_ms * 1000);
}

static void slow_write(void) {
    if (slow_writes) slow_down();
}

ssize_t write(int fd, const void *data, size_t size) {
    struct file *f = tracked(fd);
    if (!f) return real_write(fd, data, size);
    if (fail_writes && failing()) { errno = EIO; return -1; }
    slow_write();
    pthread_mutex_lock(&lock);
    ssize_t n = real_write(fd, data, size);
    if (n > 0) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        add_range(f, end - n, end);
    }
    pthread_mutex_unlock(&lock);
    return n;
}

static ssize_t pwrite_common(int fd, const void *data, size_t size, off_t offset) {
    struct file *f = tracked(fd);
    if (!f) return real_pwrite(fd, data, size, offset);
    if (fail_writes && failing()) { errno = EIO; return -1; }
    slow_write();
    pthread_mutex_lock(&lock);
    ssize_t n = real_pwrite(fd, data, size, offset);
    if (n > 0) add_range(f, offset, offset + n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t pwrite(int fd, const void *data, size_t size, off_t offset) { return pwrite_common(fd, data, size, offset); }
ssize_t pwrite64(int fd, const void *data, size_t size, off_t offset) { return pwrite_common(fd, data, size, offset); }

static int ftruncate_common(int fd, off_t length) {
    struct file *f = tracked(fd);
    if (!f) return real_ftruncate(fd, length);
    if (fail_writes && failing()) { errno = EIO; return -1; }
    pthread_mutex_lock(&lock);
    int r = real_ftruncate(fd, length);
    /* Whatever lies past the new length is re-read (zeros, or cut off) at the next sync. */
    if (r == 0) add_range(f, length, (off_t)1 << 62);
    pthread_mutex_unlock(&lock);
    return r;
}

int ftruncate(int fd, off_t length) { return ftruncate_common(fd, length); }
int ftruncate64(int fd, off_t length) { return ftruncate_common(fd, length); }

/* After a successful real sync of `fd`: its data up to now is durable. */
static void make_durable(int fd, struct file *f) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int from = real_open(link, O_RDONLY | O_CLOEXEC);
    if (from < 0) die("reopen for reading");
    struct stat info;
    if (fstat(from, &info) != 0) die("fstat");
    shadow_path(path, "data", f->name);
    int to = real_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (to < 0) die("open shadow data");
    if (real_ftruncate(to, info.st_size) != 0) die("truncate shadow data");
    for (int i = 0; i < f->count; i++) {
        off_t start = f->ranges[i].start, end = f->ranges[i].end;
        if (end > info.st_size) end = info.st_size;
        if (start < end) copy_range(from, to, start, end - start);
    }
    f->count = 0;
    real_close(to);
    real_close(from);
}

/* After a successful real sync of the folder: its entries as they are now are durable. */
static void make_entries_durable(void) {
    for (int i = 0; i < MAX_FILES; i++) {
        struct file *f = &files[i];
        if (!f->used) continue;
        if (f->live) {
            if (!f->durable) mark_entry(f, 1);
        } else {
            char path[PATH_MAX];
            if (f->durable) mark_entry(f, 0);
            shadow_path(path, "data", f->name);
            real_unlink(path);
            free(f->ranges);
            memset(f, 0, sizeof *f);
        }
    }
}

static int sync_common(int fd, int (*real)(int)) {
    int slot = (fd >= 0 && fd < MAX_FDS) ? atomic_load(&fd_slot[fd]) : 0;
    if (slot == 0) return real(fd);
    if (slot > 0) slow_down();
    pthread_mutex_lock(&lock);
    if (slot > 0 && failing()) {
        pthread_mutex_unlock(&lock);
        errno = EIO;
        return -1;
    }
    int r = real(fd);
    if (r == 0 && !ignore_fsync) {
        if (slot == DIR_FD) make_entries_durable();
        else make_durable(fd, &files[slot - 1]);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int fsync(int fd) { return sync_common(fd, real_fsync); }
int fdatasync(int fd) { return sync_common(fd, real_fdatasync); }

static void note_unlink(const char *name) {
    pthread_mutex_lock(&lock);
    struct file *f = find(name);
    if (f) f->live = 0; /* Its durable entry stays until the folder is synced. */
    pthread_mutex_unlock(&lock);
}

int unlink(const char *path) {
    char buffer[NAME_MAX + 1];
    const char *name = watched_name(AT_FDCWD, path, buffer);
    int r = real_unlink(path);
    if (r == 0 && name && *name) note_unlink(name);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags) {
    char buffer[NAME_MAX + 1];
    const char *name = watched_name(dirfd, path, buffer);
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0 && name && *name) note_unlink(name);
    return r;
}

static void note_rename(const char *from, const char *to) {
    pthread_mutex_lock(&lock);
    struct file *old = from ? find(from) : NULL;
    if (to) {
        struct file *target = find(to);
        if (!target) target = add(to);
        char a[PATH_MAX], b[PATH_MAX];
        if (old) {
            /* The renamed file's durable content goes with it (copied: the old name's
             * durable entry still shows it until the folder is synced). */
            shadow_path(a, "data", from);
            shadow_path(b, "data", to);
            int s = real_open(a, O_RDONLY | O_CLOEXEC), d = real_open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (s < 0 || d < 0) die("copy shadow data for rename");
            struct stat info;
            fstat(s, &info);
            copy_range(s, d, 0, info.st_size);
            real_close(s);
            real_close(d);
            target->count = 0;
            for (int i = 0; i < old->count; i++) add_range(target, old->ranges[i].start, old->ranges[i].end);
        }
        target->live = 1;
        if (target->durable) mark_entry(target, 0);
        for (int fd = 0; old && fd < MAX_FDS; fd++)
            if (atomic_load(&fd_slot[fd]) == (int)(old - files) + 1) atomic_store(&fd_slot[fd], (int)(target - files) + 1);
    }
    if (old) old->live = 0;
    pthread_mutex_unlock(&lock);
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    char b1[NAME_MAX + 1], b2[NAME_MAX + 1];
    const char *n1 = watched_name(fromfd, from, b1), *n2 = watched_name(tofd, to, b2);
    int r = real_renameat(fromfd, from, tofd, to);
    if (r == 0 && ((n1 && *n1) || (n2 && *n2))) note_rename(n1 && *n1 ? n1 : NULL, n2 && *n2 ? n2 : NULL);
    return r;
}

int rename(const char *from, const char *to) { return renameat(AT_FDCWD, from, AT_FDCWD, to); }

__attribute__((constructor)) static void start(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    real_renameat = dlsym(RTLD_NEXT, "renameat");
    const char *dir = getenv("POWERCUT_DIR"), *shadow_dir = getenv("POWERCUT_SHADOW");
    if (!dir || !shadow_dir) return;
    if (!realpath(dir, watched)) die("POWERCUT_DIR");
    watched_len = strlen(watched);
    snprintf(shadow, sizeof shadow, "%s", shadow_dir);
    const char *ignore = getenv("POWERCUT_IGNORE_FSYNC");
    ignore_fsync = ignore && strcmp(ignore, "1") == 0;
    const char *fail = getenv("POWERCUT_FAIL_WHEN");
    if (fail) snprintf(fail_when, sizeof fail_when, "%s", fail);
    const char *slow = getenv("POWERCUT_SLOW_WHEN");
    if (slow) snprintf(slow_when, sizeof slow_when, "%s", slow);
    const char *slow_for = getenv("POWERCUT_SLOW_MS");
    if (slow_for) slow_ms = atol(slow_for);
    const char *writes = getenv("POWERCUT_FAIL_WRITES");
    fail_writes = writes && strcmp(writes, "1") == 0;
    const char *slowly = getenv("POWERCUT_SLOW_WRITES");
    slow_writes = slowly && strcmp(slowly, "1") == 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data", shadow);
    if (mkdir(shadow, 0755) != 0 && errno != EEXIST) die("mkdir shadow");
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir shadow/data");
    snprintf(path, sizeof path, "%s/entries", shadow);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir shadow/entries");
    /* Left over from an earlier run: start again from the folder as it is. */
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", shadow, k ? "entries" : "data");
        DIR *old = opendir(path);
        if (!old) die("opendir shadow");
        struct dirent *e;
        while ((e = readdir(old))) {
            if (e->d_name[0] == '.') continue;
            char stale[PATH_MAX];
            snprintf(stale, sizeof stale, "%s/%s", path, e->d_name);
            real_unlink(stale);
        }
        closedir(old);
    }
    enabled = 1;
    /* What is in the folder now is on disk: it survived the last cut (or was there before). */
    DIR *d = opendir(watched);
    if (!d) die("opendir POWERCUT_DIR");
    struct dirent *e;
    while ((e = readdir(d))) {
        char buffer[NAME_MAX + 1], full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", watched, e->d_name);
        const char *name = watched_name(AT_FDCWD, full, buffer);
        struct stat info;
        if (!name || !*name || stat(full, &info) != 0 || !S_ISREG(info.st_mode)) continue;
        struct file *f = add(name);
        f->live = 1;
        int s = real_open(full, O_RDONLY | O_CLOEXEC);
        shadow_path(path, "data", name);
        int t = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s < 0 || t < 0) die("snapshot");
        copy_range(s, t, 0, info.st_size);
        real_close(s);
        real_close(t);
        mark_entry(f, 1);
    }
    closedir(d);
}
