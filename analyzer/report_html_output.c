/* report_html_output.c: creating the file a report is written to (`report -o FILE`).
 *
 * The file is created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, so an existing file is never
 * overwritten by accident and a symlink planted at the path is never followed. With --force an
 * existing regular file is unlinked first (a symlink, directory or device is refused even then),
 * and the exclusive create still applies, so a symlink raced into place in between is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "report_html.h"

FILE *report_output_open(const char *path, int force, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISLNK(sb.st_mode)) {
            snprintf(err, errlen, "%s: is a symbolic link; refusing to write through it", path);
            return NULL;
        }
        if (!S_ISREG(sb.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a regular file", path);
            return NULL;
        }
        if (!force) {
            snprintf(err, errlen, "%s: already exists (use --force to replace it)", path);
            return NULL;
        }
        if (unlink(path) < 0) {
            snprintf(err, errlen, "%s: cannot remove the existing file: %s", path,
                     strerror(errno));
            return NULL;
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s: already exists (use --force to replace it)", path);
        else
            snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    return f;
}

int report_output_close(FILE *f, const char *path, char *err, size_t errlen)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "%s: write failed: %s", path, bad ? "I/O error" : strerror(errno));
        return -1;
    }
    return 0;
}
