module github.com/resmtp/smtp/bench

go 1.25.0

require github.com/resmtp/smtp v0.0.0

require (
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6 // indirect
	golang.org/x/net v0.58.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace github.com/resmtp/smtp => ../
