DROP TABLE "change_event_horizon";
DROP TABLE "change_events";
