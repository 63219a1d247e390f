module github.com/syros/syros/sdks/go

go 1.24
