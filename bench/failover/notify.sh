#!/bin/sh
# The seed's notify.sh: log VRRP transitions to syslog.
case "$1" in
    master) logger -t keepalived "Transition to MASTER state" ;;
    backup) logger -t keepalived "Transition to BACKUP state" ;;
    fault)  logger -t keepalived "Transition to FAULT state" ;;
    *)      logger -t keepalived "Unknown state: $1" ;;
esac
