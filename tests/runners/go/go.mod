module example.com/tomato/runners

go 1.22
