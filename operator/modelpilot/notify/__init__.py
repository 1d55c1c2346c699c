"""Notifications: the rollout and drift decisions of a reconcile, sent to the webhooks named in
`spec.notifications` (docs/notifications.md).

Pure: `events` (which operator Event is which notification, and what it carries), `payload`
(CloudEvents and Slack bodies) and `policy` (retries, the per-target queue, the rate of warnings).
Side effects: `delivery` (the Secret read and the HTTP POST) and `notifier` (the sender threads).
"""
