"""selfcorrect.backends"""
