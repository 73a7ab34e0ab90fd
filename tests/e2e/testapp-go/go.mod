module rip.invalid/e2e/testapp

go 1.19
