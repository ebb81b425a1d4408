from bkrec-base:1
run ["echo","no-spaces-json"]
copy   Dockerfile    /d
Run echo \
  mixed-case
