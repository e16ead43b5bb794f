/* plugin.c - dlopen a plugin and check it before anything of it runs. */
#define _GNU_SOURCE /* memfd_create() */
#include "host/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/trust.h"
#include "host/elf.h"

/*
 * Copy the file at `path` into an anonymous memory file; returns its fd, or
 * -1 (-2: refused as untrusted) with `why` set. Plugins are loaded from
 * such a private copy because
 * glibc's dlopen() hands back the library already loaded when the path, or
 * the file's device and inode, match one: a plugin rebuilt at the same path
 * would keep running the old code after a reload. The copy also keeps a
 * file overwritten in place (cp over a loaded .so) from pulling the code
 * out from under a running handler.
 *
 * Unless `insecure`, the file and its directories must be such that only
 * root or warrend's user could have written them (base/trust.h): a plugin
 * runs as warrend, with its broker credentials. And the file must not
 * change while it is copied (a build or cp writing it in place): half of
 * an old file and half of a new one is neither.
 */
static int private_copy(const char *path, const char *name, bool insecure,
                        char *why, size_t whylen)
{
	char buf[65536];
	/* O_NONBLOCK: a FIFO at the path must not hang the daemon here. */
	int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), out = -1, saved;
	struct stat st, after;
	ssize_t n;
	off_t copied = 0;

	if (in < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	/* Checked on what was opened, not on the path: no race with a
	 * rename in between. */
	if (fstat(in, &st) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		close(in);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s",
		         S_ISDIR(st.st_mode) ? "it is a directory"
		                             : "it is not a regular file");
		close(in);
		return -1;
	}
	if (!insecure && wd_trust_check(in, path, why, whylen) < 0) {
		close(in);
		return -2;
	}
	out = memfd_create(name, MFD_CLOEXEC);
	if (out < 0)
		goto fail;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				goto fail;
			}
			off += w;
		}
		copied += n;
	}
	if (fstat(in, &after) < 0)
		goto fail;
	if (copied != st.st_size || after.st_size != st.st_size ||
	    after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
		snprintf(
		    why, whylen,
		    "it changed while being copied (%jd bytes, then %jd): "
		    "install plugins by rename, e.g. install -m 644 NEW.so "
		    "PATH",
		    (intmax_t)st.st_size, (intmax_t)after.st_size);
		close(in);
		close(out);
		return -1;
	}
	close(in);
	return out;
fail:
	saved = errno;
	snprintf(why, whylen, "%s", strerror(errno));
	close(in);
	if (out >= 0)
		close(out);
	errno = saved;
	return -1;
}

/* dlerror() names the copy ("/proc/self/fd/N: ..."); the user knows the
 * plugin by its path, which the message gives already. */
static const char *without_copy_name(const char *why, const char *copy)
{
	size_t n = strlen(copy);

	if (why && strncmp(why, copy, n) == 0 && strncmp(why + n, ": ", 2) == 0)
		return why + n + 2;
	return why ? why : "unknown error";
}

int wd_plugin_load(struct wd_plugin *p, const struct wd_conf_plugin *conf,
                   char *err, size_t errlen)
{
	warren_plugin_entry_fn entry;
	const warren_plugin *d;
	char copy[64], why[256];

	memset(p, 0, sizeof(*p));
	p->conf = conf;
	p->ctx.plugin = conf;
	p->fd = private_copy(conf->path, conf->name, conf->insecure, why,
	                     sizeof(why));
	if (p->fd < 0) {
		/* -2: someone else could have written it (base/trust.h). */
		snprintf(err, errlen, "plugin \"%s\" (%s): %s: %s%s",
		         conf->name, conf->path,
		         p->fd == -2 ? "refused" : "cannot load", why,
		         p->fd == -2 ? " (or plugin_insecure = true, for "
		                       "development only)"
		                     : "");
		p->fd = -1;
		return -1;
	}
	/* Checked on the private copy, which is what dlopen maps. */
	if (wd_elf_check(p->fd, why, sizeof(why)) < 0) {
		snprintf(err, errlen,
		         "plugin \"%s\" (%s): cannot load: %s (install "
		         "plugins by rename, e.g. install -m 644 NEW.so PATH)",
		         conf->name, conf->path, why);
		close(p->fd);
		p->fd = -1;
		return -1;
	}
	/* The fd stays open while the library is loaded: its number, and so
	 * the name glibc knows the library by, stays unique. RTLD_NOW: an
	 * unresolved symbol fails here, not mid-message. RTLD_LOCAL:
	 * plugins cannot see (or clash with) each other. */
	snprintf(copy, sizeof(copy), "/proc/self/fd/%d", p->fd);
	p->dl = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		snprintf(err, errlen, "plugin \"%s\" (%s): cannot load: %s",
		         conf->name, conf->path,
		         without_copy_name(dlerror(), copy));
		close(p->fd);
		p->fd = -1;
		return -1;
	}
	dlerror();
	*(void **)&entry = dlsym(p->dl, WARREN_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		snprintf(err, errlen,
		         "plugin \"%s\" (%s): no %s symbol: is it a warren "
		         "plugin? Define it as shown in warren.h",
		         conf->name, conf->path, WARREN_PLUGIN_ENTRY_SYMBOL);
		goto fail;
	}
	d = entry();
	if (!d) {
		snprintf(err, errlen, "plugin \"%s\" (%s): %s() returned NULL",
		         conf->name, conf->path, WARREN_PLUGIN_ENTRY_SYMBOL);
		goto fail;
	}
	if (d->abi_major != WARREN_ABI_MAJOR) {
		snprintf(err, errlen,
		         "plugin \"%s\" (%s): built for warren ABI %u.%u, this "
		         "warrend implements ABI %d.%d: not binary compatible; "
		         "rebuild the plugin against this warrend's SDK "
		         "(pkg-config warren)",
		         conf->name, conf->path, d->abi_major, d->abi_minor,
		         WARREN_ABI_MAJOR, WARREN_ABI_MINOR);
		goto fail;
	}
	if (d->abi_minor > WARREN_ABI_MINOR) {
		snprintf(err, errlen,
		         "plugin \"%s\" (%s): needs warren ABI %u.%u, this "
		         "warrend implements ABI %d.%d: upgrade warrend or "
		         "rebuild the plugin against this warrend's SDK",
		         conf->name, conf->path, d->abi_major, d->abi_minor,
		         WARREN_ABI_MAJOR, WARREN_ABI_MINOR);
		goto fail;
	}
	if (!d->handlers) {
		snprintf(err, errlen,
		         "plugin \"%s\" (%s): its descriptor has "
		         "no handler table",
		         conf->name, conf->path);
		goto fail;
	}
	p->desc = d;
	return 0;
fail:
	dlclose(p->dl);
	p->dl = NULL;
	close(p->fd);
	p->fd = -1;
	return -1;
}

/* The handler table entry called `name`, or NULL. */
static const warren_handler *find_handler(const struct wd_plugin *p,
                                          const char *name)
{
	for (const warren_handler *h = p->desc->handlers; h->name; h++)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

warren_handler_fn wd_plugin_handler(const struct wd_plugin *p, const char *name)
{
	const warren_handler *h = find_handler(p, name);

	return h ? h->handle : NULL;
}

warren_batch_fn wd_plugin_batch_handler(const struct wd_plugin *p,
                                        const char *name)
{
	const warren_handler *h = find_handler(p, name);

	/* Before 1.1 the field was reserved, zero by contract. */
	return h && p->desc->abi_minor >= 1 ? h->handle_batch : NULL;
}

uintptr_t wd_plugin_handler_flags(const struct wd_plugin *p, const char *name)
{
	const warren_handler *h = find_handler(p, name);

	/* Before 1.2 the field was reserved, zero by contract. */
	return h && p->desc->abi_minor >= 2 ? h->flags : 0;
}

int wd_plugin_init(struct wd_plugin *p, char *err, size_t errlen)
{
	char why[512] = "";
	int rc = 0;

	/* publishes_to is for init only: the ctx can record just now. */
	p->ctx.targets = &p->targets;
	if (p->desc->init)
		rc = p->desc->init(&wd_sdk_api, &p->ctx, p->conf->params,
		                   p->conf->nparams, &p->state, why,
		                   sizeof(why));
	p->ctx.targets = NULL;
	if (rc != 0) {
		why[sizeof(why) - 1] = '\0';
		snprintf(err, errlen, "plugin \"%s\" (%s): init failed: %s",
		         p->conf->name, p->conf->path,
		         why[0] ? why : "no reason given");
		return -1;
	}
	p->inited = true;
	wd_log_info("plugin", "loaded \"%s\" (%s %s) from %s", p->conf->name,
	            p->desc->name ? p->desc->name : "?",
	            p->desc->version ? p->desc->version : "?", p->conf->path);
	return 0;
}

void wd_plugin_unload(struct wd_plugin *p)
{
	if (p->inited && p->desc->fini)
		p->desc->fini(p->state, &p->ctx);
	p->inited = false;
	wd_targets_free(&p->targets);
	if (p->dl)
		dlclose(p->dl);
	p->dl = NULL;
	p->desc = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}
