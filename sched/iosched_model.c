/*
 * The disk service-time model: what one request costs the device, in
 * nanoseconds, given where the previous request left the head.  A disk
 * pays seek + rotational latency + media transfer + bus transfer + command
 * overhead (the model of the GLMD paper); a solid-state device pays
 * overhead + access latency + length / bandwidth and has no geometry.
 * Policies consult the expected cost (half a revolution of rotational
 * wait); the simulator draws the rotational wait instead.  Parsing and
 * loading profiles lives in iosched_profile.c; this file is only maths on
 * an immutable, already validated struct iosched_model.
 */
#include <math.h>
#include <stdlib.h>

#include "iosched-int.h"

/* Largest long double that still converts to uint64_t without overflow. */
#define MODEL_NS_MAX 18446744073709549568.0L

/* Results are integer ns rounded to nearest; absurd profiles saturate
 * rather than wrap. */
static uint64_t round_ns(long double ns)
{
	if (!(ns > 0.0L))
		return 0;
	if (ns >= MODEL_NS_MAX)
		return UINT64_MAX;
	return (uint64_t)(ns + 0.5L);
}

static long double bytes_ns(uint64_t bytes, double bytes_per_s)
{
	return (long double)bytes * IOSCHED__NS_PER_S / bytes_per_s;
}

void iosched_model_free(struct iosched_model *m)
{
	free(m);
}

const char *iosched_model_name(const struct iosched_model *m)
{
	return m->name;
}

int iosched_model_is_ssd(const struct iosched_model *m)
{
	return m->type == IOSCHED__MODEL_SSD;
}

uint64_t iosched_model_capacity(const struct iosched_model *m)
{
	return m->capacity_bytes;
}

unsigned iosched_model_parallelism(const struct iosched_model *m)
{
	return m->type == IOSCHED__MODEL_SSD ? m->parallelism : 1;
}

unsigned iosched_model_depth(const struct iosched_model *m)
{
	return m->depth;
}

/* 128-bit product: offset * cylinders overflows 64 bits for any real disk. */
uint64_t iosched_model_cylinder(const struct iosched_model *m,
				uint64_t offset)
{
	unsigned __int128 cyl;

	if (m->type == IOSCHED__MODEL_SSD)
		return 0;
	cyl = (unsigned __int128)offset * m->cylinders / m->capacity_bytes;
	return cyl >= m->cylinders ? m->cylinders - 1 : (uint64_t)cyl;
}

/* Arm travel over @d cylinders, in ns, settle included. */
static long double seek_exact_ns(const struct iosched_model *m, uint64_t d)
{
	if (d == 0)
		return 0.0L;
	return iosched__seek_travel_msl((long double)d, m->short_seek_tracks,
				       m->seek_accel, m->seek_vmax) *
		       IOSCHED__NS_PER_MS +
	       (long double)m->settle_ns;
}

uint64_t iosched_model_seek_ns(const struct iosched_model *m,
			       uint64_t from_cyl, uint64_t to_cyl)
{
	if (m->type == IOSCHED__MODEL_SSD)
		return 0;
	return round_ns(seek_exact_ns(m, from_cyl > to_cyl ? from_cyl - to_cyl
							  : to_cyl - from_cyl));
}

/* Zoned recording: outer tracks hold more sectors, so the media rate falls
 * linearly from the outermost (cylinder 0) to the innermost cylinder. */
static long double media_Bps(const struct iosched_model *m, uint64_t cyl)
{
	long double span = m->media_outer_Bps - m->media_inner_Bps;

	if (m->cylinders < 2)
		return m->media_outer_Bps;
	return m->media_outer_Bps -
	       span * (long double)cyl / (long double)(m->cylinders - 1);
}

static long double ssd_exact_ns(const struct iosched_model *m,
				enum iosched_op op, uint32_t len)
{
	int w = op == IOSCHED_WRITE;

	return (long double)m->overhead_ns +
	       (long double)(w ? m->write_latency_ns : m->read_latency_ns) +
	       bytes_ns(len, w ? m->write_Bps : m->read_Bps);
}

static long double hdd_exact_ns(const struct iosched_model *m, uint64_t head,
				uint64_t offset, uint32_t len,
				double rot_fraction)
{
	uint64_t cyl = iosched_model_cylinder(m, offset);
	long double t = (long double)m->overhead_ns;
	long double rev_ns = 60.0L * IOSCHED__NS_PER_S / m->rpm;
	long double d;

	if (offset != head) {
		uint64_t from = iosched_model_cylinder(m, head);

		t += seek_exact_ns(m, from > cyl ? from - cyl : cyl - from);
		t += rot_fraction * rev_ns;
	}
	d = (long double)len * IOSCHED__NS_PER_S / media_Bps(m, cyl);
	return t + d + bytes_ns(len, m->bus_Bps);
}

uint64_t iosched__model_service_sample_ns(const struct iosched_model *m,
					  uint64_t head, enum iosched_op op,
					  uint64_t offset, uint32_t len,
					  double rot_fraction)
{
	/* The caller promises [0, 1); keep a stray value (or NaN) from
	 * producing a negative or unbounded wait. */
	if (!(rot_fraction >= 0.0))
		rot_fraction = 0.0;
	else if (rot_fraction > 1.0)
		rot_fraction = 1.0;
	if (m->type == IOSCHED__MODEL_SSD)
		return round_ns(ssd_exact_ns(m, op, len));
	return round_ns(hdd_exact_ns(m, head, offset, len, rot_fraction));
}

uint64_t iosched__model_transfer_ns(const struct iosched_model *m,
				    enum iosched_op op, uint32_t len)
{
	if (m->type != IOSCHED__MODEL_SSD)
		return 0;
	return round_ns(bytes_ns(len, op == IOSCHED_WRITE ? m->write_Bps :
							   m->read_Bps));
}

uint64_t iosched_model_service_ns(const struct iosched_model *m,
				  uint64_t head, enum iosched_op op,
				  uint64_t offset, uint32_t len)
{
	return iosched__model_service_sample_ns(m, head, op, offset, len, 0.5);
}
