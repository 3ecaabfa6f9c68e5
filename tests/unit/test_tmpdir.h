// test_tmpdir: a scratch directory per test for the cmocka file tests
// (checkpoints, safetensors): made by setup, removed with its contents by
// teardown.
#pragma once

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char dir[64];
} fixture;

// Makes /tmp/<prefix>.XXXXXX into *state; 0 or -1.
static inline int tmpdir_setup(void **state, const char *prefix) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/%s.XXXXXX", prefix);
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

// Removes a directory tree of plain files and directories.
static inline int tmpdir_rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) return remove(path);
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[1024];
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) {
            rc = -1;
            continue;
        }
        rc |= tmpdir_rm_tree(child);
    }
    closedir(d);
    return rc | remove(path);
}
