/*
 * The textbook GLMD, kept as an oracle for the production policy: for a
 * new request it rebuilds and re-times the queue for every insertion
 * position (O(n^2) per insertion) and keeps the fewest misses, then the
 * least total service time, then the earliest position.
 */
#ifndef GLMD_ORACLE_H
#define GLMD_ORACLE_H

#include "iosched-int.h"

extern const struct iosched__policy_ops glmd_oracle_policy;

#endif
