DROP TABLE "session_rotations";
