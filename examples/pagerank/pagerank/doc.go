// Package pagerank is Spark's PageRank example (examples/src/main/scala/org/apache/spark/examples/
// SparkPageRank.scala) as a Spillway job, plus Plain, the same algorithm in Go maps, which the job
// is checked against.
package pagerank
