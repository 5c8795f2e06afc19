package pagerank

import "github.com/spillway/spillway/examples/pagerank/graphgen"

// Damping is PageRank's damping factor as Spark's example uses it: rank = (1 - Damping) +
// Damping × (sum of contributions).
const Damping = 0.85

// Plain computes PageRank with the semantics of Spark's SparkPageRank example entirely in Go
// maps, as the reference the shuffle-based Run is checked against:
//
//	links = distinct edges grouped by source
//	ranks = 1.0 for every source
//	repeat iterations times:
//	    contributions = for each source in both links and ranks, rank/outDegree to each destination
//	    ranks = 0.15 + 0.85 × (sum of the contributions of each destination)
//
// A page that receives no contribution drops out of ranks (and so contributes nothing in the
// next iteration); a page without out-links only receives. iterations must be >= 1.
func Plain(edges []graphgen.Edge, iterations int) map[int64]float64 {
	links := make(map[int64][]int64)
	seen := make(map[graphgen.Edge]struct{}, len(edges))
	for _, e := range edges {
		if _, dup := seen[e]; dup {
			continue
		}
		seen[e] = struct{}{}
		links[e.Src] = append(links[e.Src], e.Dst)
	}
	seen = nil
	ranks := make(map[int64]float64, len(links))
	for src := range links {
		ranks[src] = 1
	}
	for range iterations {
		sums := make(map[int64]float64, len(ranks))
		for src, dsts := range links {
			rank, ok := ranks[src]
			if !ok {
				continue
			}
			c := rank / float64(len(dsts))
			for _, d := range dsts {
				sums[d] += c
			}
		}
		for v, s := range sums {
			sums[v] = (1 - Damping) + Damping*s
		}
		ranks = sums
	}
	return ranks
}
