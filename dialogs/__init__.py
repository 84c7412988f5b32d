"""One ComponentDialog per task; steps render cards/ and call services/."""
