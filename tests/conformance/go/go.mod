module github.com/syros/syros/tests/conformance/go

go 1.24

require github.com/syros/syros/sdks/go v0.0.0

replace github.com/syros/syros/sdks/go => ../../../sdks/go
