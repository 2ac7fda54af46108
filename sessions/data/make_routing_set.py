"""Builds the labelled tool-routing set: routing_tools.json (OpenAI-style function definitions
across many domains) and routing_queries.jsonl (user turns labelled with their tool, or null)."""
from __future__ import annotations

import json
from pathlib import Path

# (name, description, {param: (type, description)}, [required])
TOOLS = [
("get_weather_forecast", "Get the weather forecast (temperature, rain, wind) for a city or location for the coming days.", {"location": ("string", "City or place name"), "days": ("integer", "Number of days ahead, 1-10")}, ["location"]),
("get_air_quality", "Get the current air quality index, pollen and pollution levels for a location.", {"location": ("string", "City or place name")}, ["location"]),
("create_calendar_event", "Create a new event, meeting, call or appointment in the user's calendar: schedule or book a time slot with a title, start time, duration and attendees.", {"title": ("string", "Event title"), "start": ("string", "Start time, ISO 8601"), "duration_minutes": ("integer", "Length"), "attendees": ("array", "Email addresses to invite")}, ["title", "start"]),
("list_calendar_events", "List the events on the user's calendar for a day or date range, to see what is scheduled and when they are free.", {"start_date": ("string", "First day"), "end_date": ("string", "Last day")}, ["start_date"]),
("send_email", "Compose and send an email message to one or more people (write to, reply to, or email someone) with a subject and body.", {"to": ("array", "Recipient addresses"), "subject": ("string", "Subject line"), "body": ("string", "Message text")}, ["to", "subject", "body"]),
("search_emails", "Search the user's email inbox and mailbox for messages someone sent them, by sender, subject, keywords or date.", {"query": ("string", "Search terms"), "from": ("string", "Sender filter")}, ["query"]),
("send_chat_message", "Send an instant message or direct message (DM) to a person, group or channel on the team chat app such as Slack or Teams.", {"channel": ("string", "Person or channel"), "text": ("string", "Message")}, ["channel", "text"]),
("read_file", "Open and read the contents of a text file (code, config, README, notes) from the local disk by its path or file name.", {"path": ("string", "File path")}, ["path"]),
("write_file", "Create, save, write or overwrite a file on the local disk (such as .txt, .md, .py, .json) with the given text content.", {"path": ("string", "File path"), "content": ("string", "Text to write")}, ["path", "content"]),
("list_directory", "List the files and folders inside a directory on the local disk.", {"path": ("string", "Directory path")}, ["path"]),
("run_shell_command", "Run a shell command in a terminal and return its output and exit code.", {"command": ("string", "The command line")}, ["command"]),
("run_python_code", "Execute a snippet of Python code in a sandbox and return what it prints.", {"code": ("string", "Python source")}, ["code"]),
("git_commit", "Stage changes and create a git commit with a message in the current repository.", {"message": ("string", "Commit message"), "paths": ("array", "Files to stage")}, ["message"]),
("create_github_issue", "Open a new issue in a GitHub repository to report a bug or request a feature.", {"repo": ("string", "owner/name"), "title": ("string", "Issue title"), "body": ("string", "Details")}, ["repo", "title"]),
("web_search", "Search the web (like Google) for up-to-date information, how-to guides, articles and pages about any topic.", {"query": ("string", "Search query")}, ["query"]),
("fetch_webpage", "Download a web page, article or link by its URL and return its text content.", {"url": ("string", "Page URL")}, ["url"]),
("get_directions", "Get driving, walking, cycling or transit directions and travel time between two places.", {"origin": ("string", "Start"), "destination": ("string", "End"), "mode": ("string", "driving|walking|cycling|transit")}, ["origin", "destination"]),
("find_nearby_places", "Find places of a given type near a location, such as cafes, pharmacies, gas stations or ATMs.", {"category": ("string", "Kind of place"), "near": ("string", "Location")}, ["category"]),
("search_flights", "Search for airline flights between two airports or cities on given dates, with prices.", {"from": ("string", "Origin"), "to": ("string", "Destination"), "date": ("string", "Departure date"), "return_date": ("string", "Return date")}, ["from", "to", "date"]),
("book_hotel", "Search and book a hotel room in a city for check-in and check-out dates.", {"city": ("string", "City"), "check_in": ("string", "Date"), "check_out": ("string", "Date"), "guests": ("integer", "Number of guests")}, ["city", "check_in", "check_out"]),
("request_ride", "Order a taxi or ride-hailing car to pick the user up and take them to a destination.", {"pickup": ("string", "Pickup address"), "destination": ("string", "Drop-off address")}, ["destination"]),
("order_food_delivery", "Order food from a restaurant for home delivery.", {"restaurant": ("string", "Restaurant"), "items": ("array", "Dishes")}, ["items"]),
("reserve_restaurant_table", "Book a table at a restaurant for a number of people at a date and time.", {"restaurant": ("string", "Restaurant"), "time": ("string", "Date and time"), "party_size": ("integer", "People")}, ["restaurant", "time", "party_size"]),
("track_package", "Track the delivery status and location of a parcel by its tracking number.", {"tracking_number": ("string", "Carrier tracking number")}, ["tracking_number"]),
("get_stock_quote", "Get the latest share price and daily change for a stock ticker symbol.", {"symbol": ("string", "Ticker, e.g. AAPL")}, ["symbol"]),
("convert_currency", "Convert an amount of money from one currency to another at today's exchange rate.", {"amount": ("number", "Amount"), "from": ("string", "Currency code"), "to": ("string", "Currency code")}, ["amount", "from", "to"]),
("get_account_balance", "Get the current balance of the user's bank accounts.", {"account": ("string", "checking|savings|credit")}, []),
("transfer_money", "Transfer money between the user's bank accounts or to another person.", {"amount": ("number", "Amount"), "to_account": ("string", "Recipient account or person")}, ["amount", "to_account"]),
("list_transactions", "List recent card and bank transactions, optionally filtered by merchant or category, to review spending.", {"since": ("string", "Start date"), "category": ("string", "Spending category")}, []),
("pay_bill", "Pay a utility, phone, internet or credit card bill from the user's account.", {"payee": ("string", "Who to pay"), "amount": ("number", "Amount")}, ["payee"]),
("get_crypto_price", "Get the current price of a cryptocurrency such as Bitcoin or Ethereum.", {"coin": ("string", "Coin name or symbol")}, ["coin"]),
("search_products", "Search an online store's catalogue for products to buy, with prices and ratings.", {"query": ("string", "What to look for"), "max_price": ("number", "Price limit")}, ["query"]),
("add_to_cart", "Add a product to the user's shopping cart.", {"product_id": ("string", "Product"), "quantity": ("integer", "How many")}, ["product_id"]),
("get_order_status", "Look up the status of an order the user placed in the online shop.", {"order_id": ("string", "Order number")}, ["order_id"]),
("request_refund", "Start a return or refund for an item from a past order.", {"order_id": ("string", "Order number"), "reason": ("string", "Why")}, ["order_id"]),
("play_music", "Play a song, album, artist or playlist on the user's speaker.", {"query": ("string", "What to play")}, ["query"]),
("set_thermostat", "Set the home thermostat to a target temperature or heating/cooling mode.", {"temperature": ("number", "Degrees"), "mode": ("string", "heat|cool|auto")}, ["temperature"]),
("control_lights", "Turn smart lights on or off, dim them or change their color in a room.", {"room": ("string", "Room"), "action": ("string", "on|off|dim|color"), "value": ("string", "Brightness or color")}, ["action"]),
("lock_door", "Lock or unlock a smart door lock at home.", {"door": ("string", "Which door"), "locked": ("boolean", "Lock or unlock")}, ["locked"]),
("set_reminder", "Create a reminder that notifies or pings the user about something at a given time, so they don't forget.", {"text": ("string", "What to remember"), "time": ("string", "When")}, ["text", "time"]),
("set_timer", "Start a countdown timer for a number of minutes or seconds.", {"duration_seconds": ("integer", "Length")}, ["duration_seconds"]),
("set_alarm", "Set a wake-up alarm for a time of day.", {"time": ("string", "HH:MM"), "repeat": ("string", "Days it repeats")}, ["time"]),
("create_note", "Save a note to the user's notes app: jot down or write down text, ideas or information to keep.", {"title": ("string", "Title"), "text": ("string", "Note text")}, ["text"]),
("add_todo_item", "Add a task or to-do item to the user's to-do list or task list, with an optional due date.", {"task": ("string", "Task"), "due": ("string", "Due date")}, ["task"]),
("lookup_contact", "Look up a saved contact's phone number, email address or home address in the user's address book.", {"name": ("string", "Contact name")}, ["name"]),
("make_phone_call", "Place a phone call to a contact or number.", {"who": ("string", "Contact or number")}, ["who"]),
("translate_text", "Translate text from one language into another.", {"text": ("string", "Text"), "target_language": ("string", "Language to translate into")}, ["text", "target_language"]),
("define_word", "Look up the dictionary meaning or definition of a word, its pronunciation and synonyms.", {"word": ("string", "Word")}, ["word"]),
("convert_units", "Convert a measurement between units, such as miles to kilometers, pounds to kilograms or Fahrenheit to Celsius.", {"value": ("number", "Amount"), "from_unit": ("string", "Unit"), "to_unit": ("string", "Unit")}, ["value", "from_unit", "to_unit"]),
("calculate", "Evaluate a math expression or arithmetic calculation exactly.", {"expression": ("string", "e.g. 17.5% of 240")}, ["expression"]),
("get_news_headlines", "Get today's top news headlines, optionally for a topic or country.", {"topic": ("string", "Topic")}, []),
("get_sports_scores", "Get live or final scores, fixtures and standings for a sports team or league.", {"team": ("string", "Team or league")}, ["team"]),
("get_movie_showtimes", "Find cinema showtimes for movies playing near the user.", {"movie": ("string", "Title"), "near": ("string", "Location")}, []),
("generate_image", "Generate an image or illustration from a text description.", {"prompt": ("string", "What to draw"), "size": ("string", "Image size")}, ["prompt"]),
("summarize_document", "Summarize a long document, PDF or report into the key points.", {"document_id": ("string", "Document or file"), "length": ("string", "short|medium|long")}, ["document_id"]),
("extract_text_from_image", "Read and extract the text written in a photo, picture, screenshot or scanned image (OCR).", {"image_path": ("string", "Image file")}, ["image_path"]),
("query_database", "Run a SQL query against the company's analytics database (users, orders, events tables) and return the rows or counts.", {"sql": ("string", "SQL statement")}, ["sql"]),
("update_spreadsheet", "Write values into cells of a spreadsheet, or append rows to a sheet.", {"sheet": ("string", "Spreadsheet name"), "range": ("string", "Cells, e.g. B2:D5"), "values": ("array", "Rows of values")}, ["sheet", "values"]),
("deploy_service", "Deploy a new version of a service to staging or production.", {"service": ("string", "Service name"), "environment": ("string", "staging|production"), "version": ("string", "Version or commit")}, ["service", "environment"]),
("get_server_metrics", "Get CPU, memory, latency and error-rate metrics for a server or service over a time window.", {"service": ("string", "Service or host"), "window": ("string", "e.g. 1h")}, ["service"]),
("create_support_ticket", "Create a customer support ticket describing a problem with a product or account.", {"subject": ("string", "Summary"), "description": ("string", "Details"), "priority": ("string", "low|normal|high")}, ["subject"]),
("log_workout", "Log an exercise session such as a run, swim or gym workout with its duration and distance.", {"activity": ("string", "Kind of exercise"), "minutes": ("integer", "Duration"), "distance_km": ("number", "Distance")}, ["activity"]),
("log_meal_calories", "Log or track a meal or food eaten (breakfast, lunch, dinner, snack) and its calories in the user's nutrition diary.", {"meal": ("string", "What was eaten"), "calories": ("integer", "Calories")}, ["meal"]),
("get_sleep_stats", "Get the user's sleep duration and quality from their wearable for recent nights.", {"nights": ("integer", "How many nights")}, []),
("find_recipe", "Find cooking recipes by dish name or by ingredients the user has.", {"query": ("string", "Dish or ingredients"), "diet": ("string", "e.g. vegetarian")}, ["query"]),
("search_jobs", "Search job listings by role, location and salary.", {"role": ("string", "Job title"), "location": ("string", "Where")}, ["role"]),
("search_real_estate", "Search homes and apartments for sale or rent by area, price and number of bedrooms.", {"area": ("string", "Neighbourhood or city"), "max_price": ("number", "Budget"), "bedrooms": ("integer", "Bedrooms"), "rent": ("boolean", "Rent instead of buy")}, ["area"]),
("check_library_availability", "Check whether a book is available to borrow at the public library and place a hold.", {"title": ("string", "Book title")}, ["title"]),
("schedule_car_service", "Book a maintenance appointment for the user's car, such as an oil change or tire rotation.", {"service": ("string", "Kind of service"), "date": ("string", "Preferred date")}, ["service"]),
("request_time_off", "Submit a vacation or sick-leave request to the HR system for a range of dates.", {"start": ("string", "First day"), "end": ("string", "Last day"), "type": ("string", "vacation|sick")}, ["start", "end"]),
("generate_password", "Generate a strong random password of a given length.", {"length": ("integer", "Characters"), "symbols": ("boolean", "Include symbols")}, []),
("create_qr_code", "Create a QR code image that encodes a URL or text.", {"data": ("string", "URL or text")}, ["data"]),
]

Q = {
"get_weather_forecast": ["Will it rain in Seattle tomorrow?", "I'm heading to Lisbon this weekend, do I need to pack a jacket?", "what's the temperature going to be like in Chicago on Friday", "Is it going to snow in Denver over the next few days?", "How windy will it be at the coast on Saturday? Thinking of sailing."],
"get_air_quality": ["Is the air safe to go running outside in Delhi today?", "what's the AQI right now in Los Angeles", "My allergies are terrible, how high is the pollen count here?", "Is there a lot of smog in Beijing at the moment?"],
"create_calendar_event": ["Put a meeting with Dana on my calendar for Tuesday at 3pm", "Schedule a 30 minute sync with the design team next Monday morning", "Block out Friday afternoon for the dentist appointment", "add my sister's birthday dinner on June 12 at 7 to my schedule", "Can you set up a call with the vendor on Thursday and invite bob@acme.com?"],
"list_calendar_events": ["What do I have on my calendar tomorrow?", "Am I free on Wednesday afternoon?", "show me my meetings for next week", "When is my next appointment?"],
"send_email": ["Email my landlord that the heater is broken", "Send a note to jane@example.com saying the report is attached and ready", "Write to the team to let them know the offsite is cancelled and send it", "fire off an email to HR asking about my benefits enrollment", "Reply to the client by email with our updated quote"],
"search_emails": ["Find the email from the airline with my booking confirmation", "Did Mark send me anything about the budget last week?", "Look through my inbox for the invoice from Contoso", "where's that message with the wifi password someone emailed me"],
"send_chat_message": ["Ping the #deployments channel that the release is done", "Tell Priya on Slack I'm running ten minutes late", "message the dev team chat: standup is moved to 10", "Drop a quick DM to Carlos asking if he reviewed my PR"],
"read_file": ["Show me what's inside config/settings.yaml", "Open the README.md and read it to me", "What does the file notes/todo.txt say?", "cat the contents of /etc/hosts"],
"write_file": ["Save this text into a file called draft.txt", "Create a file hello.py with a print statement in it", "Overwrite output.json with an empty object", "Write the meeting summary to summary.md on disk"],
"list_directory": ["What files are in my Downloads folder?", "list everything under the src directory", "Which folders are there in the project root?", "show me the contents of ~/Documents"],
"run_shell_command": ["Run 'df -h' and tell me how much disk space is left", "Execute npm install in the terminal", "Can you check which process is using port 8080 from the command line?", "run the test suite with make test"],
"run_python_code": ["Run this python snippet and tell me what it prints: print(sum(range(10)))", "Execute some Python to sort this list of numbers for me", "Test this function in a Python sandbox to see if it throws", "evaluate this python code: import math; math.factorial(20)"],
"git_commit": ["Commit my changes with the message 'fix login bug'", "Make a git commit of the updated docs", "Stage the modified files and commit them", "save my work to the repo history with a commit saying refactor parser"],
"create_github_issue": ["Open an issue on our GitHub repo about the crash on startup", "File a bug in acme/webapp: the search page returns 500", "Report a feature request on GitHub for dark mode support", "log this bug in the project's issue tracker on github"],
"web_search": ["Search the internet for the best budget mechanical keyboards in 2024", "Look up online who won the Nobel Prize in chemistry this year", "google how to remove a stripped screw", "Find me some articles about the latest advances in battery technology"],
"fetch_webpage": ["Get the text of https://example.com/blog/post-42", "Download this page and give me its content: https://news.ycombinator.com", "Grab the contents of this URL for me https://docs.python.org/3/whatsnew/3.12.html", "Pull the article at this link so I can read it here"],
"get_directions": ["How do I get from the train station to the museum on foot?", "What's the fastest route to the airport by car right now?", "How long does it take to bike from home to the office?", "Give me transit directions to Union Square"],
"find_nearby_places": ["Is there a pharmacy open near me?", "Find a coffee shop close to where I am", "Where's the nearest gas station?", "any ATMs around here?", "I need a vet clinic nearby for my dog"],
"search_flights": ["Find flights from Boston to London on March 3", "What's the cheapest way to fly to Tokyo next month?", "Are there any direct flights from NYC to Miami this Friday?", "look for round trip airfare SFO to Denver leaving the 5th, back the 9th"],
"book_hotel": ["Book me a hotel in Paris from the 10th to the 14th", "I need a place to stay in Austin for two nights next weekend", "Find a room for 3 guests in Rome in early July", "reserve accommodation near the conference center in Berlin"],
"request_ride": ["Get me a cab to the airport", "Call an Uber to take me home", "I need a ride to 221 Baker Street right now", "Order a car to pick me up at the office"],
"order_food_delivery": ["Order a large pepperoni pizza to my place", "I'm hungry, get me pad thai delivered", "Can you order sushi for delivery tonight?", "have two burritos and chips sent to my apartment"],
"reserve_restaurant_table": ["Book a table for four at Nopa on Saturday at 8pm", "Reserve dinner for two at the Italian place tonight", "Can you get us a table at Chez Panisse for 6 people Friday?", "make a reservation for lunch tomorrow at noon, party of 3, at Blue Hill"],
"track_package": ["Where is my package? Tracking number 1Z999AA10123456784", "Has my parcel shipped yet? It's UPS 1Z12345", "track shipment 9400111899223344556677", "When will my delivery arrive? here's the tracking code: JD014600006281"],
"get_stock_quote": ["How is Apple stock doing today?", "What's TSLA trading at?", "Give me the current share price of Microsoft", "did NVDA go up or down this morning"],
"convert_currency": ["How much is 100 dollars in euros?", "Convert 5000 yen to USD", "What would 250 pounds be in Canadian dollars?", "how many pesos do I get for 80 euros"],
"get_account_balance": ["How much money do I have in my checking account?", "What's my savings balance?", "Do I have enough in the bank to cover rent?", "check my account balance"],
"transfer_money": ["Send $50 to my brother", "Move 200 from checking into savings", "Transfer 1,000 euros to Anna's account", "pay back Sam the 30 bucks I owe him"],
"list_transactions": ["Show my recent purchases on my card", "How much did I spend on restaurants this month?", "List the transactions from last week", "what did I buy at Amazon recently"],
"pay_bill": ["Pay my electricity bill", "Pay the internet bill that's due Friday", "Settle my credit card statement in full", "take care of the water bill payment"],
"get_crypto_price": ["What's the price of Bitcoin right now?", "How much is one ETH worth?", "has dogecoin gone up today?", "current solana price please"],
"search_products": ["Find me wireless earbuds under $100", "Shop for a standing desk with good reviews", "I'm looking to buy a new coffee grinder", "what running shoes are on sale in the store"],
"add_to_cart": ["Add the blue backpack to my cart", "Put two packs of AA batteries in my basket", "I'll take that laptop stand, add it to the cart", "add item B07XJ8C8F5 to my shopping cart"],
"get_order_status": ["What's the status of order 58213?", "Has my order from last week shipped?", "Is my shop order A-1042 still processing?", "check on the order I placed yesterday"],
"request_refund": ["I want to return the shoes from order 7731, they don't fit", "Get me a refund for the broken blender", "Start a return for my last purchase", "the item I received was damaged, I'd like my money back"],
"play_music": ["Play some jazz", "Put on Taylor Swift's latest album", "I want to hear my workout playlist", "play Bohemian Rhapsody on the living room speaker"],
"set_thermostat": ["Set the heat to 21 degrees", "It's cold in here, turn the heating up", "Switch the AC to cooling at 72", "make the house warmer before I get home"],
"control_lights": ["Turn off the lights in the bedroom", "Dim the living room lights to 30%", "Make the kitchen lights blue", "lights on please"],
"lock_door": ["Lock the front door", "Did I leave the back door unlocked? Lock it", "Unlock the door for the delivery guy", "secure the house, lock all the doors"],
"set_reminder": ["Remind me to call mom at 6pm", "Don't let me forget to take my pills tomorrow morning", "Remind me to renew my passport next Monday", "ping me at 4 to leave for the dentist"],
"set_timer": ["Set a timer for 10 minutes", "Start a 45 second countdown", "time my eggs for 7 minutes", "Can you count down 25 minutes for a pomodoro?"],
"set_alarm": ["Wake me up at 6:30 tomorrow", "Set an alarm for 7am on weekdays", "I need an alarm at 5 for my early flight", "alarm at 8:15 please"],
"create_note": ["Make a note: the gate code is 4471", "Jot down these ideas for the blog post", "Save a note about what the doctor said", "write down that the car is parked on level 3"],
"add_todo_item": ["Add 'buy milk' to my to-do list", "Put finishing the tax forms on my task list for Friday", "I need to remember to book the venue, add it to my todos", "new task: clean the garage this weekend"],
"lookup_contact": ["What's Sarah's phone number?", "Find the email address for Dr. Patel in my contacts", "Where does uncle Joe live? I need his address", "do I have a number saved for the plumber"],
"make_phone_call": ["Call mom", "Dial the pizza place", "Phone my dentist's office", "ring 555-0134"],
"translate_text": ["How do you say 'where is the bathroom' in Japanese?", "Translate this paragraph into Spanish", "What does 'je ne sais quoi' mean in English?", "put this email into German for me"],
"define_word": ["What does 'ephemeral' mean?", "Define the word ubiquitous", "What's a synonym for happy?", "how do you pronounce 'quinoa'"],
"convert_units": ["How many kilometers is 26.2 miles?", "Convert 180 pounds to kg", "What's 350 Fahrenheit in Celsius?", "how many cups are in a liter"],
"calculate": ["What's 17.5% of 240?", "Compute 1234 times 5678", "What's the square root of 2 to six decimals?", "if I split 187.40 between 4 people how much each"],
"get_news_headlines": ["What's in the news today?", "Give me the top technology headlines", "Any big news stories this morning?", "what's happening in the world right now"],
"get_sports_scores": ["Did the Lakers win last night?", "What's the score of the Arsenal game?", "Show me the Premier League table", "when do the Yankees play next"],
"get_movie_showtimes": ["When is Dune playing at the cinema near me?", "What movies are showing tonight around here?", "Find showtimes for the new Pixar film", "is there a late screening of Oppenheimer nearby"],
"generate_image": ["Draw a picture of a cat wearing a spacesuit", "Create an illustration of a cozy cabin in the snow", "Make me a logo image of a fox", "generate artwork of a futuristic city skyline at sunset"],
"summarize_document": ["Summarize the quarterly report PDF for me", "Give me the key points of this 40-page contract", "tl;dr of the research paper I uploaded", "Can you condense the meeting transcript into a few bullets?"],
"extract_text_from_image": ["Read the text in this photo of a receipt", "What does the sign in this picture say?", "Get the words out of the scanned letter image", "OCR this screenshot for me"],
"query_database": ["How many users signed up last month according to the database?", "Run a SQL query to get the top 10 customers by revenue", "Pull the number of orders per day from our analytics DB", "select all rows from the events table where type is error"],
"update_spreadsheet": ["Add this week's sales numbers to the budget spreadsheet", "Put these values in cells B2 to B5 of the tracker sheet", "Append a row to the expenses sheet with today's lunch", "update the inventory spreadsheet with the new counts"],
"deploy_service": ["Deploy the payments service to production", "Push version 2.3.1 of the API to staging", "Roll out the latest build of the web frontend", "ship the checkout service commit abc123 to prod"],
"get_server_metrics": ["What's the CPU usage on the web servers?", "Show me the error rate of the API over the last hour", "Is the database server running out of memory?", "how's latency looking for the checkout service today"],
"create_support_ticket": ["Open a support ticket: my account is locked", "I can't log in to the app, please file a ticket with support", "Report to customer service that my device won't charge", "raise a high priority ticket about the billing error"],
"log_workout": ["Log a 5k run in 28 minutes", "I swam for 40 minutes today, record it", "Add my gym session to my fitness log", "track that I cycled 20 km this morning"],
"log_meal_calories": ["Log my lunch: a chicken salad, about 450 calories", "Add a banana to my food diary", "I had a burger and fries for dinner, record the calories", "track breakfast, oatmeal with berries"],
"get_sleep_stats": ["How well did I sleep last night?", "What was my average sleep this week?", "How much deep sleep did I get?", "did my watch record my sleep on Sunday"],
"find_recipe": ["Find a recipe for banana bread", "What can I cook with chicken, rice and broccoli?", "Give me a vegetarian lasagna recipe", "ideas for dinner using leftover salmon"],
"search_jobs": ["Find software engineering jobs in Berlin", "Are there any remote data analyst positions?", "Look for nursing jobs near me that pay over 80k", "I'm looking for a new job as a product manager"],
"search_real_estate": ["Find two-bedroom apartments for rent in Brooklyn under $3000", "What houses are for sale in Austin under 500k?", "Show me condos near downtown Seattle", "search for a 3 bed home to buy in the suburbs of Denver"],
"check_library_availability": ["Is 'The Overstory' available at the library?", "Can I borrow Project Hail Mary from the public library?", "Place a hold on the new Murakami novel at the library", "does the library have a copy of Sapiens in"],
"schedule_car_service": ["Book an oil change for my car next week", "My tires need rotating, schedule it", "Set up a maintenance appointment for the car", "the check engine light is on, book a service slot at the garage"],
"request_time_off": ["Request vacation from July 1 to July 5", "I'm sick today, submit a sick day", "Put in for time off over the holidays", "book PTO next Friday through Monday in the HR system"],
"generate_password": ["Generate a strong password for me", "Make a random 20 character password with symbols", "I need a new secure password", "create a passphrase-like password, 16 chars, no symbols"],
"create_qr_code": ["Make a QR code for my website https://mysite.dev", "Create a QR code that links to the wifi login page", "generate a QR for this text: table 12", "I need a scannable code for our menu URL"],
}
NULL = [
"Tell me a joke", "How are you doing today?", "Thanks, that's all!", "What's your favorite color?", "Write a haiku about autumn leaves",
"Explain recursion like I'm five", "What is the difference between a list and a tuple in Python?", "Why is the sky blue?", "Let's play twenty questions",
"Give me some advice on dealing with a difficult coworker", "Can you help me brainstorm names for my cat?", "What's the meaning of life?",
"Rewrite this sentence to sound more formal: gonna be late", "Tell me a bedtime story about a dragon", "Do you dream?", "hello!",
"What's a good way to stay motivated when studying?", "Explain how photosynthesis works", "Is it rude to leave a party without saying goodbye?",
"Summarize the plot of Hamlet in two sentences", "What are the pros and cons of remote work?", "I feel a bit sad today",
"Proofread this: their going to the store tomorow", "Pretend you're a tour guide and welcome me", "Can you explain what a black hole is?", "Give me a fun fact",
"Which is better, cats or dogs?", "Write a limerick about a programmer", "How do I become a better public speaker?", "What does an API do, in simple terms?",
"Explain the causes of World War I briefly", "Help me write a toast for my best friend's wedding", "Are you an AI?", "What do you think about pineapple on pizza?",
"Suggest a name for my fantasy novel's villain", "Why do cats purr?", "Can you be more concise in your answers?", "Can you roleplay as a pirate?",
"What's the difference between affect and effect?", "ok cool", "Compose a short poem for Mother's Day", "How should I structure a cover letter?",
"Explain the offside rule in soccer", "What are some good habits for better sleep?", "Describe the taste of mango to someone who's never had one",
"What would happen if the moon disappeared?", "Give me a riddle", "What is machine learning?", "Help me think through whether to take a new job offer",
"Explain the Monty Hall problem", "Never mind, forget it",
]


def tool_definitions() -> list[dict]:
    out = []
    for name, description, params, required in TOOLS:
        props = {p: {"type": t, "description": d} for p, (t, d) in params.items()}
        for p, (t, _) in params.items():
            if t == "array":
                props[p]["items"] = {"type": "string"}
        out.append({"name": name, "description": description,
                    "parameters": {"type": "object", "properties": props, "required": required}})
    return out


def queries() -> list[dict]:
    rows = [{"query": q, "tool": name} for name, qs in Q.items() for q in qs]
    rows += [{"query": q, "tool": None} for q in NULL]
    return rows


def main() -> None:
    here = Path(__file__).parent
    (here / "routing_tools.json").write_text(json.dumps(tool_definitions(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(here / "routing_queries.jsonl", "w", encoding="utf-8") as f:
        for r in queries():
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
