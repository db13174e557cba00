/*
 * Sessions of the metadata server: who a client is, how long the server
 * believes it alive (its lease), the files it has open (handles), which
 * file each writer has locked, and which snapshots readers have frozen
 * with LOCK_SNAP.  The lease is what makes a dead client safe: a writer
 * talks to the volume directly, so its locks and reservations outlive its
 * connection until the lease runs out, and only then go to someone else.
 *
 * Invariants:
 *  1. A session is bound to at most one connection; conn == NULL means the
 *     connection is gone and only write locks keep the session alive.
 *  2. expires_ns = time of the client's last frame + lease; a session is
 *     ended no later than one tick after expires_ns.
 *  3. A file has at most one writer: locks maps ino -> the WRITE handle,
 *     and a handle is in locks exactly while it is open for writing.
 *     n_writers counts the session's WRITE handles.
 *  4. A handle is on the server's hold list exactly while hold != NULL;
 *     the hold owns one reference to the frozen file version.
 *  5. Ending a session journals a RELEASE of each writer's reservations
 *     before its lock goes, so no unit is handed out twice.
 *
 * Transitions:
 *   (none) --HELLO: djmfs__sess_new--------------------> LIVE (conn)
 *   LIVE   --any frame: djmfs__sess_touch---------------> LIVE
 *   LIVE   --conn closed, no writer: djmfs__sess_detach-> ENDED
 *   LIVE   --conn closed, writers: djmfs__sess_detach---> ORPHAN (no conn)
 *   LIVE   --lease out: the loop closes its connection (it asks
 *            djmfs__sess_expired), then as ORPHAN below
 *   ORPHAN --lease out: djmfs__sess_tick-----------------> ENDED (logged)
 *   any    --server freed: djmfs__sess_free_all---------> ENDED (no journal)
 * Handles: OPEN djmfs__handle_new -> open; CLOSE djmfs__handle_close or the
 * session's end -> freed.  Holds: LOCK_SNAP djmfs__hold_set; UNLOCK_SNAP,
 * timeout (djmfs__sess_tick) or close djmfs__hold_drop.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_srv.h"

/* ------------------------------------------------------------------ */
/* u64 -> pointer map: open addressing, linear probing                 */
/* ------------------------------------------------------------------ */

struct djmfs__map_slot {
	uint64_t key;
	void *val; /* NULL: empty */
};

struct djmfs__map {
	size_t cap; /* power of two */
	size_t n;
	struct djmfs__map_slot *s;
};

static size_t map_home(const struct djmfs__map *m, uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k & (m->cap - 1);
}

static int map_new(struct djmfs__map **out)
{
	struct djmfs__map *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->cap = 16;
	m->s = calloc(m->cap, sizeof(*m->s));
	if (!m->s) {
		free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

static void map_free(struct djmfs__map *m)
{
	if (!m)
		return;
	free(m->s);
	free(m);
}

static size_t map_find(const struct djmfs__map *m, uint64_t key)
{
	size_t i = map_home(m, key);

	while (m->s[i].val && m->s[i].key != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void *map_get(const struct djmfs__map *m, uint64_t key)
{
	return m->s[map_find(m, key)].val;
}

static int map_grow(struct djmfs__map *m)
{
	struct djmfs__map_slot *old = m->s;
	size_t oldcap = m->cap, i;

	m->s = calloc(oldcap * 2, sizeof(*m->s));
	if (!m->s) {
		m->s = old;
		return -ENOMEM;
	}
	m->cap = oldcap * 2;
	for (i = 0; i < oldcap; i++)
		if (old[i].val)
			m->s[map_find(m, old[i].key)] = old[i];
	free(old);
	return 0;
}

/* @val must not be NULL; an existing key is replaced. */
static int map_put(struct djmfs__map *m, uint64_t key, void *val)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
		return -ENOMEM;
	i = map_find(m, key);
	if (!m->s[i].val)
		m->n++;
	m->s[i].key = key;
	m->s[i].val = val;
	return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken without
 * tombstones. */
static void map_del(struct djmfs__map *m, uint64_t key)
{
	size_t mask = m->cap - 1, i = map_find(m, key), j = i, k;

	if (!m->s[i].val)
		return;
	for (;;) {
		j = (j + 1) & mask;
		if (!m->s[j].val)
			break;
		k = map_home(m, m->s[j].key);
		/* The entry at j may move to i unless its home lies
		 * cyclically in (i, j]. */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			m->s[i] = m->s[j];
			i = j;
		}
	}
	m->s[i].val = NULL;
	m->n--;
}

/* ------------------------------------------------------------------ */
/* Holds                                                                */
/* ------------------------------------------------------------------ */

void djmfs__hold_set(struct djmfs_server *s, struct djmfs__handle *h,
		     const struct djmfs__file *f, uint64_t until_ns)
{
	const struct djmfs__file *nf = djmfs__file_ref(f);

	if (h->hold) {
		djmfs__file_unref(h->hold);
	} else {
		h->hprev = NULL;
		h->hnext = s->holds;
		if (s->holds)
			s->holds->hprev = h;
		s->holds = h;
	}
	h->hold = nf;
	h->hold_until_ns = until_ns;
}

void djmfs__hold_drop(struct djmfs_server *s, struct djmfs__handle *h)
{
	if (!h->hold)
		return;
	if (h->hprev)
		h->hprev->hnext = h->hnext;
	else
		s->holds = h->hnext;
	if (h->hnext)
		h->hnext->hprev = h->hprev;
	h->hprev = h->hnext = NULL;
	djmfs__file_unref(h->hold);
	h->hold = NULL;
	h->hold_until_ns = 0;
}

uint64_t djmfs__hold_until(const struct djmfs_server *s, uint64_t ino)
{
	const struct djmfs__handle *h;
	uint64_t until = 0;

	for (h = s->holds; h; h = h->hnext)
		if (h->ino == ino && h->hold_until_ns > until)
			until = h->hold_until_ns;
	return until;
}

/* ------------------------------------------------------------------ */
/* Handles and write locks                                              */
/* ------------------------------------------------------------------ */

struct djmfs__handle *djmfs__lock_owner(const struct djmfs_server *s,
					uint64_t ino)
{
	return map_get(s->locks, ino);
}

int djmfs__handle_new(struct djmfs_server *s, struct djmfs__session *ss,
		      uint64_t ino, const char *name, unsigned mode,
		      struct djmfs__handle **out)
{
	struct djmfs__handle *h = calloc(1, sizeof(*h));
	int err = -ENOMEM;

	if (!h)
		return -ENOMEM;
	h->id = ++ss->next_handle;
	h->mode = mode;
	h->ino = ino;
	h->sess = ss;
	snprintf(h->name, sizeof(h->name), "%s", name);
	if (map_put(ss->handles, h->id, h) < 0)
		goto err;
	if (mode & DJMFS_H_WRITE) {
		if (map_put(s->locks, ino, h) < 0) {
			map_del(ss->handles, h->id);
			goto err;
		}
		ss->n_writers++;
	}
	*out = h;
	return 0;
err:
	free(h);
	return err;
}

struct djmfs__handle *djmfs__handle_get(const struct djmfs__session *ss,
					uint32_t id)
{
	return map_get(ss->handles, id);
}

/* Releases what @h holds; a writer's reservations go back through the
 * journal first (invariant 5). */
int64_t djmfs__handle_close(struct djmfs_server *s, struct djmfs__handle *h)
{
	struct djmfs__session *ss = h->sess;
	int64_t units = 0;

	if (h->mode & DJMFS_H_WRITE) {
		units = djmfs__commit_release(s, h->ino);
		if (units < 0)
			djmfs__log(&s->o.log, DJMFS_LOG_WARN,
				   "session %llu: releasing the reservations "
				   "of ino %llu: %s",
				   (unsigned long long)ss->id,
				   (unsigned long long)h->ino,
				   strerror((int)-units));
		if (djmfs__lock_owner(s, h->ino) == h)
			map_del(s->locks, h->ino);
		ss->n_writers--;
	}
	djmfs__hold_drop(s, h);
	map_del(ss->handles, h->id);
	free(h);
	return units;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                             */
/* ------------------------------------------------------------------ */

uint32_t djmfs__lease_clamp(const struct djmfs_server *s, uint32_t ask)
{
	uint32_t def = s->o.lease_ms;
	/* An operator who set a short default (tests) keeps it. */
	uint32_t lo = def < DJMFS_SRV_LEASE_MIN_MS ? def :
						      DJMFS_SRV_LEASE_MIN_MS;
	uint64_t hi = (uint64_t)def * 10;

	if (ask == 0)
		return def;
	if (ask < lo)
		return lo;
	return ask > hi ? (uint32_t)hi : ask;
}

int djmfs__sess_new(struct djmfs_server *s, struct djmfs__conn *c,
		    const char *name, uint32_t lease_ms,
		    struct djmfs__session **out)
{
	struct djmfs__session *ss = calloc(1, sizeof(*ss));

	if (!ss || map_new(&ss->handles) < 0) {
		free(ss);
		return -ENOMEM;
	}
	ss->id = ++s->next_session_id;
	snprintf(ss->name, sizeof(ss->name), "%s", name);
	ss->lease_ms = lease_ms;
	ss->conn = c;
	djmfs__sess_touch(ss, djmfs__mono_ns());
	ss->next = s->sessions;
	if (s->sessions)
		s->sessions->prev = ss;
	s->sessions = ss;
	s->n_sessions++;
	c->sess = ss;
	*out = ss;
	return 0;
}

void djmfs__sess_touch(struct djmfs__session *ss, uint64_t now_ns)
{
	ss->expires_ns = now_ns + (uint64_t)ss->lease_ms * 1000000u;
}

/* Closes every handle (journaling releases when @journal), then frees
 * the session.  Returns the files unlocked; *units gets the units. */
static uint64_t sess_drop(struct djmfs_server *s, struct djmfs__session *ss,
			  int journal, uint64_t *units)
{
	struct djmfs__map *hm = ss->handles;
	uint64_t files = 0;
	size_t i;

	*units = 0;
	for (i = 0; i < hm->cap; i++) {
		struct djmfs__handle *h = hm->s[i].val;
		int64_t u;

		if (!h)
			continue;
		if (h->mode & DJMFS_H_WRITE)
			files++;
		if (journal) {
			u = djmfs__handle_close(s, h);
			*units += u > 0 ? (uint64_t)u : 0;
		} else {
			if (h->mode & DJMFS_H_WRITE)
				map_del(s->locks, h->ino);
			djmfs__hold_drop(s, h);
			map_del(hm, h->id);
			free(h);
		}
		/* Deleting shifted a later entry into slot i. */
		i--;
	}
	if (ss->conn)
		ss->conn->sess = NULL;
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		s->sessions = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	s->n_sessions--;
	map_free(hm);
	free(ss);
	return files;
}

static void sess_end(struct djmfs_server *s, struct djmfs__session *ss,
		     enum djmfs_log_level lvl, const char *how)
{
	unsigned long long id = ss->id;
	char name[sizeof(ss->name)];
	uint64_t units, files;

	memcpy(name, ss->name, sizeof(name));
	files = sess_drop(s, ss, 1, &units);
	djmfs__log(&s->o.log, lvl,
		   "session %llu (%s) %s: released %llu files, %llu units", id,
		   name, how, (unsigned long long)files,
		   (unsigned long long)units);
}

void djmfs__sess_detach(struct djmfs_server *s, struct djmfs__session *ss)
{
	ss->conn = NULL;
	if (ss->n_writers == 0)
		sess_end(s, ss, DJMFS_LOG_DEBUG, "closed");
	else
		djmfs__log(&s->o.log, DJMFS_LOG_INFO,
			   "session %llu (%s) lost its connection: keeping "
			   "%u write locks until its lease ends",
			   (unsigned long long)ss->id, ss->name,
			   ss->n_writers);
}

void djmfs__sess_tick(struct djmfs_server *s, uint64_t now_ns)
{
	struct djmfs__session *ss, *next;
	struct djmfs__handle *h, *hn;

	for (ss = s->sessions; ss; ss = next) {
		next = ss->next;
		if (ss->expires_ns > now_ns)
			continue;
		/* The loop closed its connection first (invariant 1). */
		assert(!ss->conn);
		sess_end(s, ss, DJMFS_LOG_INFO, "expired");
	}
	for (h = s->holds; h; h = hn) {
		hn = h->hnext;
		if (h->hold_until_ns <= now_ns) {
			djmfs__log(&s->o.log, DJMFS_LOG_DEBUG,
				   "session %llu: LOCK_SNAP hold on %s timed "
				   "out",
				   (unsigned long long)h->sess->id, h->name);
			djmfs__hold_drop(s, h);
		}
	}
}

int djmfs__sess_init(struct djmfs_server *s)
{
	return map_new(&s->locks);
}

void djmfs__sess_free_all(struct djmfs_server *s)
{
	uint64_t units;

	while (s->sessions)
		sess_drop(s, s->sessions, 0, &units);
	map_free(s->locks);
	s->locks = NULL;
}

/* ------------------------------------------------------------------ */
/* Units the metadata lets go                                           */
/* ------------------------------------------------------------------ */

/* A unit given back comes free at once; deleted data only once no
 * session can still read it, which leases and holds decide. */
void djmfs__sess_on_free(void *arg, uint64_t first_au, uint64_t n_aus,
			enum djmfs__free_kind kind)
{
	struct djmfs_server *s = arg;
	uint64_t now, until, held;

	/* Boot rebuilds free space from the maps instead. */
	if (s->booting || !s->alloc)
		return;
	if (kind == DJMFS_FREE_NOW) {
		djmfs__alloc_put(s->alloc, first_au, n_aus);
		return;
	}
	/* Deleted data: a reader may still read it from the snapshot it
	 * last fetched (for a lease) or from a frozen one (its hold). */
	now = djmfs__mono_ns();
	until = now + (uint64_t)s->o.lease_ms * 1000000u;
	held = djmfs__hold_until(s, s->cur_ino);
	djmfs__alloc_defer(s->alloc, first_au, n_aus,
			   held > until ? held : until);
}

int djmfs__sess_expired(const struct djmfs__session *ss, uint64_t now_ns)
{
	return ss->expires_ns <= now_ns;
}
