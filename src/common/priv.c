/*
 * priv - see priv.h.
 */
#define _GNU_SOURCE 1 /* getresuid, setresuid, initgroups */

#include "build_config.h"

#include "common/priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* getpwnam_r/getgrnam_r's buffer: enough for any sane passwd or group line. */
#define PRIV_LOOKUP_BUF 16384

int
priv_resolve(struct priv *p, const struct config *cfg, char *msg, size_t msg_size)
{
    memset(p, 0, sizeof(*p));
    if (cfg->user[0] == '\0') {
        if (cfg->group[0] != '\0') {
            snprintf(msg, msg_size, "--group=%s needs --user", cfg->group);
            return -1;
        }
        return 0;
    }
    char *buf = malloc(PRIV_LOOKUP_BUF);
    if (buf == NULL) {
        snprintf(msg, msg_size, "--user: out of memory");
        return -1;
    }
    int rc = -1;
    struct passwd pw, *pwp = NULL;
    int err = getpwnam_r(cfg->user, &pw, buf, PRIV_LOOKUP_BUF, &pwp);
    if (pwp == NULL) {
        snprintf(msg, msg_size, "--user=%s: %s", cfg->user,
                 err != 0 ? strerror(err) : "no such user");
        goto out;
    }
    p->uid = pw.pw_uid;
    p->gid = pw.pw_gid;
    p->own_groups = 1;
    if (strlen(cfg->user) >= sizeof(p->user)) {
        snprintf(msg, msg_size, "--user=%s: name too long", cfg->user);
        goto out;
    }
    memcpy(p->user, cfg->user, strlen(cfg->user) + 1);
    if (cfg->group[0] != '\0') {
        struct group gr, *grp = NULL;
        err = getgrnam_r(cfg->group, &gr, buf, PRIV_LOOKUP_BUF, &grp);
        if (grp == NULL) {
            snprintf(msg, msg_size, "--group=%s: %s", cfg->group,
                     err != 0 ? strerror(err) : "no such group");
            goto out;
        }
        p->gid = gr.gr_gid;
        p->own_groups = 0; /* an explicit group: no other groups */
    }
    if (geteuid() != 0 && (p->uid != geteuid() || p->gid != getegid())) {
        snprintf(msg, msg_size,
                 "--user=%s: only root can switch to another user or group (running as uid %ld)",
                 cfg->user, (long)geteuid());
        goto out;
    }
    p->active = 1;
    rc = 0;
out:
    free(buf);
    return rc;
}

/* 1 when the process runs as p's user and group with nothing else to drop. */
static int
priv_is_target(const struct priv *p)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0)
        return 0;
    return ruid == p->uid && euid == p->uid && suid == p->uid && rgid == p->gid && egid == p->gid &&
           sgid == p->gid;
}

int
priv_drop(const struct priv *p, char *msg, size_t msg_size)
{
    if (!p->active)
        return 0;
    if (!priv_is_target(p)) {
        if (p->own_groups ? initgroups(p->user, p->gid) != 0 : setgroups(0, NULL) != 0) {
            snprintf(msg, msg_size, "--user=%s: %s: %s", p->user,
                     p->own_groups ? "initgroups" : "setgroups", strerror(errno));
            return -1;
        }
        if (setresgid(p->gid, p->gid, p->gid) != 0) {
            snprintf(msg, msg_size, "--user=%s: setresgid(%ld): %s", p->user, (long)p->gid,
                     strerror(errno));
            return -1;
        }
        if (setresuid(p->uid, p->uid, p->uid) != 0) {
            snprintf(msg, msg_size, "--user=%s: setresuid(%ld): %s", p->user, (long)p->uid,
                     strerror(errno));
            return -1;
        }
    }
    /* It must stick: the ids read back, and root cannot be had again. */
    if (!priv_is_target(p) || (p->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))) {
        snprintf(msg, msg_size, "--user=%s: the credentials did not change as asked", p->user);
        return -1;
    }
    return 0;
}
