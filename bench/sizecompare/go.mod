module github.com/spillway/spillway/bench/sizecompare

go 1.26.0

require (
	github.com/DmitriyVTitov/size v1.5.0
	github.com/spillway/spillway v0.0.0
)

replace github.com/spillway/spillway => ../..
