package pagerank

import (
	"fmt"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// JoinValue is one value of each iteration's join of links with ranks (an executor.CoGroupMap
// of two inputs, Spark's CoGroupedRDD for links.join(ranks)): a links record of input
// linksInput, with the page's distinct destinations in increasing order (never empty), or one
// partial sum of the contributions the page received, read from the previous iteration's
// shuffle (input ranksInput).
type JoinValue struct {
	Links        []int64
	Contribution float64
}

// The inputs of the join map.
const (
	linksInput = iota
	ranksInput
)

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

// linksSideCodec encodes the join's links records (their destinations) in its spills.
type linksSideCodec struct{}

func (linksSideCodec) Append(dst []byte, v JoinValue) []byte {
	return linksCodec().Append(dst, v.Links)
}

func (linksSideCodec) Decode(src []byte) (JoinValue, int, error) {
	links, n, err := linksCodec().Decode(src)
	if err != nil {
		return JoinValue{}, 0, fmt.Errorf("pagerank: joined links: %w", err)
	}
	return JoinValue{Links: links}, n, nil
}

// contribSideCodec encodes the join's partial sums of contributions in its spills.
type contribSideCodec struct{}

func (contribSideCodec) Append(dst []byte, v JoinValue) []byte {
	return rankCodec{}.Append(dst, v.Contribution)
}

func (contribSideCodec) Decode(src []byte) (JoinValue, int, error) {
	sum, n, err := rankCodec{}.Decode(src)
	if err != nil {
		return JoinValue{}, 0, fmt.Errorf("pagerank: joined contribution: %w", err)
	}
	return JoinValue{Contribution: sum}, n, nil
}
