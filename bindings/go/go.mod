module surgewall.dev/go/surgewall

go 1.24
