#!/bin/sh
cat /built.txt /asset.txt
ls -l /usr/local/bin/run.sh | cut -c1-10
ls /app
