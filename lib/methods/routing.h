/* routing.h - the clustering of the `routing` method (routing.c), for tests that check which
 * cluster a query and a key land in. Not part of the method interface (method.h). */
#ifndef AB_METHODS_ROUTING_H
#define AB_METHODS_ROUTING_H

#include <stdint.h>

#include "methods/method.h"

enum { AB_ROUTING_C = 16 }; /* centroids */

/* The clusters routing forms on prefill problem p (seeded by p->seed and p->self): the cluster
 * of each query into q_cluster (n) and the nearest centroid of each key into k_cluster (n), both
 * in [0, AB_ROUTING_C). AB_OK or AB_E_NOMEM. */
int ab_routing_clusters(const struct ab_problem *p, int32_t *q_cluster, int32_t *k_cluster);

#endif
