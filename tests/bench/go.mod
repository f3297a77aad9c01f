module barista-bench

go 1.19
