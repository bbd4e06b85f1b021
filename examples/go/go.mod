module example.invalid/baton-example-go

go 1.19
