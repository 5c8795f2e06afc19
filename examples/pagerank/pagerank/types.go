package pagerank

import (
	"fmt"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// Joined is the combiner of each iteration's join of links with ranks: what Spark's
// CoGroupedRDD keeps per key for links.join(ranks) (one buffer per side). A page that had a
// links record has its destinations in Links (never empty); a page that received contributions
// in the previous iteration has Ranked set and their sum in Sum.
type Joined struct {
	// Links are the page's distinct destinations, in increasing order; nil when the page has no
	// out-links (no links record).
	Links []int64
	// Sum is the sum of the contributions the page received.
	Sum float64
	// Ranked says the page received at least one contribution (it has a ranks record).
	Ranked bool
}

// joinValue is one record inserted into the join map: a links record (links != nil) or one
// partial sum of contributions read from the previous iteration's shuffle.
type joinValue struct {
	links   []int64
	contrib float64
}

// joinAggregator is the join's combine functions. Combiners are pointers so each key's state is
// one heap object, allocated by CreateCombiner and referenced only by the join map.
func joinAggregator() collection.Aggregator[int64, joinValue, *Joined] {
	add := func(c *Joined, v joinValue) *Joined {
		if v.links != nil {
			c.Links = v.links
		} else {
			c.Sum += v.contrib
			c.Ranked = true
		}
		return c
	}
	return collection.Aggregator[int64, joinValue, *Joined]{
		CreateCombiner: func(v joinValue) *Joined { return add(&Joined{}, v) },
		MergeValue:     add,
		MergeCombiners: func(a, b *Joined) *Joined {
			if b.Links != nil {
				a.Links = b.Links // each page has one links record, so at most one side has links
			}
			a.Sum += b.Sum
			a.Ranked = a.Ranked || b.Ranked
			return a
		},
	}
}

// sumAggregator is reduceByKey(_ + _) over contributions.
func sumAggregator() *collection.Aggregator[int64, float64, float64] {
	sum := func(a, b float64) float64 { return a + b }
	return &collection.Aggregator[int64, float64, float64]{
		CreateCombiner: func(v float64) float64 { return v },
		MergeValue:     sum,
		MergeCombiners: sum,
	}
}

// groupAggregator is groupByKey: every destination of a source in one slice.
func groupAggregator() *collection.Aggregator[int64, int64, []int64] {
	return &collection.Aggregator[int64, int64, []int64]{
		CreateCombiner: func(v int64) []int64 { return []int64{v} },
		MergeValue:     func(c []int64, v int64) []int64 { return append(c, v) },
		MergeCombiners: func(a, b []int64) []int64 { return append(a, b...) },
	}
}

// Codecs of the job's records (all stateless values).
type (
	vertexCodec = storage.VarintCodec[int64]
	rankCodec   = storage.Float64Codec
)

// linksCodec encodes a page's destinations.
func linksCodec() storage.SliceCodec[int64] {
	return storage.SliceCodec[int64]{Elem: vertexCodec{}}
}

// joinedCodec encodes a *Joined (in join-map spills) as its links, its sum and its flag.
type joinedCodec struct{}

func (joinedCodec) Append(dst []byte, j *Joined) []byte {
	dst = linksCodec().Append(dst, j.Links)
	dst = rankCodec{}.Append(dst, j.Sum)
	return storage.BoolCodec{}.Append(dst, j.Ranked)
}

func (joinedCodec) Decode(src []byte) (*Joined, int, error) {
	links, n, err := linksCodec().Decode(src)
	if err != nil {
		return nil, 0, fmt.Errorf("pagerank: joined links: %w", err)
	}
	sum, m, err := rankCodec{}.Decode(src[n:])
	if err != nil {
		return nil, 0, fmt.Errorf("pagerank: joined sum: %w", err)
	}
	n += m
	ranked, m, err := storage.BoolCodec{}.Decode(src[n:])
	if err != nil {
		return nil, 0, fmt.Errorf("pagerank: joined flag: %w", err)
	}
	return &Joined{Links: links, Sum: sum, Ranked: ranked}, n + m, nil
}
