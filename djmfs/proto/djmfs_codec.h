/*
 * The one body codec that both the wire and the journal use: a PUBLISH
 * body (layout in djmfs_proto.h).  Kept in its own private header so that
 * djmfs_wire.c (the PUBLISH request) and djmfs_jrec.c (the PUBLISH record)
 * share one implementation and cannot drift apart.  Private to those two
 * files; everything else goes through djmfs__msg_* and djmfs__jrec_*.
 */
#ifndef DJMFS_CODEC_H
#define DJMFS_CODEC_H

#include "djmfs_proto.h"

/* Decodes a PUBLISH body from @c into @p (views point into @c's input).
 * Counts are checked against the bytes left before use; n_objs <=
 * DJMFS_MAX_OBJS, meta_len <= DJMFS_META_MAX, has_meta is 0 or 1, and a
 * META object's size equals meta_len.  @has_ck: the body has sums (every
 * wire PUBLISH; a journal record of the current type); it is stored in
 * p->has_ck.  Returns 0 or -EBADMSG (also left in c->err). */
int djmfs__dec_publish(struct djmfs__cur *c, struct djmfs__publish *p,
		       int has_ck);

/* Appends a PUBLISH body, with sums when @has_ck.  Returns 0, -EINVAL (a count or field the
 * decoder would refuse), or -EMSGSIZE (more extent bytes than a frame can
 * hold); on error nothing is appended.  Allocation failure is left in
 * b->err. */
int djmfs__enc_publish(struct djmfs__buf *b, const struct djmfs__publish *p,
		       int has_ck);

#endif /* DJMFS_CODEC_H */
