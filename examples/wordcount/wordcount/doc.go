// Package wordcount is a word count over generated Zipf-distributed text: the generator (Text),
// the model count in a Go map (Count) and the job on Spillway's shuffle.
package wordcount
